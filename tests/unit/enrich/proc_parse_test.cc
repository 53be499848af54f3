#include "enrich/proc_parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vigil::enrich {
namespace {

using ::testing::ElementsAre;

constexpr std::string_view kId = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa01";

std::vector<std::string> Args(std::vector<std::string> args) { return args; }

std::string StatLine(std::string_view comm, std::string_view ppid = "1",
                     std::string_view start = "4242") {
  std::string s = "77 (" + std::string(comm) + ") S " + std::string(ppid);
  for (int field = 5; field <= 21; ++field) s += " 0";
  return s + " " + std::string(start) + " 123 45\n";
}

TEST(ProcStatTest, ParsesTheFieldsTheTreeUses) {
  const std::string line = StatLine("bash");
  const core::Result<ProcStat> stat = ParseProcStat(line);
  ASSERT_TRUE(stat.has_value()) << stat.error().ToString();
  EXPECT_EQ(stat->pid, 77u);
  EXPECT_EQ(stat->comm, "bash");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->ppid, 1u);
  EXPECT_EQ(stat->start_ticks, 4242u);
}

TEST(ProcStatTest, CommWithSpacesAndParenthesesIsReadUpToTheLastParen) {
  const std::string line = StatLine("my (odd) prog");
  const core::Result<ProcStat> stat = ParseProcStat(line);
  ASSERT_TRUE(stat.has_value()) << stat.error().ToString();
  EXPECT_EQ(stat->comm, "my (odd) prog");
  EXPECT_EQ(stat->ppid, 1u);
  EXPECT_EQ(stat->start_ticks, 4242u);
}

TEST(ProcStatTest, CommThatLooksLikeFieldsDoesNotShiftThem) {
  // A hostile comm imitating the fields that follow it.
  const std::string line = StatLine(") R 666 0 0");
  const core::Result<ProcStat> stat = ParseProcStat(line);
  ASSERT_TRUE(stat.has_value()) << stat.error().ToString();
  EXPECT_EQ(stat->comm, ") R 666 0 0");
  EXPECT_EQ(stat->ppid, 1u);
}

TEST(ProcStatTest, RejectsMalformedContent) {
  EXPECT_EQ(ParseProcStat("").error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseProcStat("77 bash S 1").has_value());          // no parentheses
  EXPECT_FALSE(ParseProcStat("77 (bash) S 1 0 0\n").has_value());  // truncated
  EXPECT_FALSE(ParseProcStat(StatLine("bash", "x")).has_value());  // ppid not a number
  EXPECT_FALSE(ParseProcStat(StatLine("bash", "1", "-5")).has_value());
  EXPECT_FALSE(ParseProcStat("x" + StatLine("bash")).has_value());  // pid not a number
  const core::Result<ProcStat> cut = ParseProcStat("77 (bash) S 1 0 0\n");
  EXPECT_NE(cut.error().message().find("22"), std::string::npos) << cut.error().message();
}

TEST(ProcStatusTest, KeepsTgidAndBothUids) {
  const core::Result<ProcStatus> status =
      ParseProcStatus("Name:\tsudo\nTgid:\t900\nPid:\t900\nUid:\t1000\t0\t0\t0\nGid:\t0\n");
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ(status->tgid, 900u);
  EXPECT_EQ(status->ruid, 1000u);
  EXPECT_EQ(status->euid, 0u);
}

TEST(ProcStatusTest, RejectsMissingOrMalformedLines) {
  EXPECT_FALSE(ParseProcStatus("Name:\tx\nUid:\t1\t1\t1\t1\n").has_value());
  EXPECT_FALSE(ParseProcStatus("Tgid:\t5\n").has_value());
  EXPECT_FALSE(ParseProcStatus("Tgid:\t5\nUid:\tabc\n").has_value());
  EXPECT_FALSE(ParseProcStatus("Tgid:\tx\nUid:\t1\t1\t1\t1\n").has_value());
}

TEST(CmdlineTest, SplitsOnNulAndIgnoresTheTrailingOne) {
  std::vector<std::string> argv;
  const std::string raw("python3\0-m\0http.server\0", 23);
  EXPECT_FALSE(SplitCmdline(raw, {}, &argv));
  EXPECT_THAT(argv, ElementsAre("python3", "-m", "http.server"));
  // An empty argument in the middle is an argument.
  EXPECT_FALSE(SplitCmdline(std::string("echo\0\0x\0", 8), {}, &argv));
  EXPECT_THAT(argv, ElementsAre("echo", "", "x"));
  // A process may rewrite its cmdline without NULs (setproctitle): one argument.
  EXPECT_FALSE(SplitCmdline("nginx: worker process", {}, &argv));
  EXPECT_THAT(argv, ElementsAre("nginx: worker process"));
  EXPECT_FALSE(SplitCmdline("", {}, &argv));
  EXPECT_TRUE(argv.empty());
}

TEST(CmdlineTest, BoundsTheCountAndTheBytes) {
  std::vector<std::string> argv;
  const std::string raw("a\0b\0c\0d\0", 8);
  EXPECT_TRUE(SplitCmdline(raw, {.max_args = 2, .max_bytes = 100}, &argv));
  EXPECT_THAT(argv, ElementsAre("a", "b"));

  // "hello\0" uses 6 of 10 bytes; "world" gets the 3 left after its separator.
  const std::string long_raw("hello\0world\0", 12);
  EXPECT_TRUE(SplitCmdline(long_raw, {.max_args = 10, .max_bytes = 10}, &argv));
  EXPECT_THAT(argv, ElementsAre("hello", "wor"));

  EXPECT_FALSE(BoundArgv(Args({"x", "y"}), {.max_args = 2, .max_bytes = 4}, &argv));
  EXPECT_THAT(argv, ElementsAre("x", "y"));
  EXPECT_TRUE(BoundArgv(Args({"x", "y", "z"}), {.max_args = 2, .max_bytes = 100}, &argv));
  EXPECT_THAT(argv, ElementsAre("x", "y"));
  EXPECT_TRUE(BoundArgv(Args({std::string(5000, 'a')}), {.max_args = 8, .max_bytes = 64}, &argv));
  ASSERT_EQ(argv.size(), 1u);
  EXPECT_EQ(argv[0].size(), 63u);
}

TEST(ContainerIdTest, RecognisesTheRuntimes) {
  const std::string id(kId);
  for (const std::string& path : {
           "/docker/" + id,
           "/system.slice/docker-" + id + ".scope",
           "/kubepods/besteffort/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/" + id,
           "/kubepods.slice/kubepods-burstable.slice/"
           "kubepods-burstable-pod0f1e2d3c_aaaa.slice/cri-containerd-" +
               id + ".scope",
           "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/crio-" + id +
               ".scope",
           "/machine.slice/libpod-" + id + ".scope",
           "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id +
               ".scope/container",
       }) {
    EXPECT_EQ(ContainerIdFromCgroupPath(path), kId) << path;
  }
}

TEST(ContainerIdTest, IgnoresHostSlicesMonitorsAndLookAlikes) {
  const std::string id(kId);
  for (const std::string& path : {
           std::string("/"), std::string("/system.slice/sshd.service"),
           std::string("/user.slice/user-1000.slice/session-4.scope"), std::string("/init.scope"),
           "/machine.slice/libpod-conmon-" + id + ".scope",
           "/system.slice/crio-conmon-" + id + ".scope",
           "/docker/" + id.substr(0, 63),        // too short
           "/docker/" + id + "0",                // too long
           "/docker/4F3C" + id.substr(4),        // not lowercase
           "/docker/" + id.substr(0, 63) + "g",  // not hex
       }) {
    EXPECT_EQ(ContainerIdFromCgroupPath(path), "") << path;
  }
}

TEST(ProcCgroupTest, PrefersTheUnifiedHierarchy) {
  const ProcCgroup cg =
      ParseProcCgroup("0::/system.slice/docker-" + std::string(kId) + ".scope\n", 4096);
  EXPECT_EQ(cg.path, "/system.slice/docker-" + std::string(kId) + ".scope");
  EXPECT_EQ(cg.container_id, kId);

  const ProcCgroup hybrid = ParseProcCgroup(
      "12:pids:/docker/" + std::string(kId) + "\n1:name=systemd:/x\n0::/init.scope\n", 4096);
  EXPECT_EQ(hybrid.path, "/init.scope");
  EXPECT_EQ(hybrid.container_id, kId);
}

TEST(ProcCgroupTest, OnV1KeepsThePathHoldingTheContainer) {
  const ProcCgroup cg = ParseProcCgroup(
      "12:cpuset:/\nbad line\n11:memory:/docker/" + std::string(kId) + "\n1:name=systemd:/\n",
      4096);
  EXPECT_EQ(cg.path, "/docker/" + std::string(kId));
  EXPECT_EQ(cg.container_id, kId);

  const ProcCgroup host = ParseProcCgroup("12:cpuset:/\n1:name=systemd:/init.scope\n", 4096);
  EXPECT_EQ(host.path, "/");
  EXPECT_EQ(host.container_id, "");
}

TEST(ProcCgroupTest, CutsThePathAndToleratesGarbage) {
  const ProcCgroup cg = ParseProcCgroup("0::/system.slice/very-long.service\n", 8);
  EXPECT_EQ(cg.path, "/system.");
  EXPECT_EQ(ParseProcCgroup("", 4096).path, "");
  EXPECT_EQ(ParseProcCgroup("no colons here\n", 4096).path, "");
}

}  // namespace
}  // namespace vigil::enrich
