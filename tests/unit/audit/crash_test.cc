// Crash consistency with a real process: a child appends through AuditLog (group commit, fsync
// per batch) and reports how many records each Flush() made durable; the parent SIGKILLs it at a
// random moment, then checks that the log verifies up to at least the last durable record, that
// a writer reopening it continues the chain, and that this holds over several crashes in a row.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>

#include "audit/audit_log.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace vigil::audit {
namespace {

// Child: append rounds of records forever; after each Flush, write "<records durable>\n".
[[noreturn]] void AppendUntilKilled(const std::string& dir, int round, int report_fd) {
  auto signer = LoadOrCreateRawKey(dir + ".key");
  if (!signer.has_value()) _exit(3);
  AuditOptions o;
  o.fsync = FsyncMode::kBatch;
  o.checkpoint_every = 37;
  o.segment_bytes = 256 * 1024;
  auto log = AuditLog::Open(dir, o, **signer, core::SystemClock::Get());
  if (!log.has_value()) _exit(4);
  const std::string pad(1500, 'p');
  for (int i = 1;; ++i) {
    if (!(*log)->Append(RecordType::kDecision, {{"round", round}, {"i", i}, {"pad", pad}}).ok()) {
      _exit(5);
    }
    if (i % 25 == 0) {
      if (!(*log)->Flush().ok()) _exit(6);
      const std::string line = std::to_string(i) + "\n";
      if (write(report_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        _exit(7);
      }
    }
  }
}

// Forks the child, waits until it has reported `reports` flushes, kills it and returns the
// highest durable count it reported (after draining the pipe), or -1 on a timeout.
int RunChildAndKill(const std::string& dir, int round, int reports) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    AppendUntilKilled(dir, round, fds[1]);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string pending;
  int durable = 0;
  int seen = 0;
  bool killed = false;
  for (;;) {
    if (!killed && seen >= reports) {
      kill(pid, SIGKILL);
      killed = true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fds[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(fds[0]);
      return -1;
    }
    char buf[256];
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      durable = std::stoi(pending.substr(0, nl));
      pending.erase(0, nl + 1);
      ++seen;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? durable : -1;
}

TEST(AuditCrashTest, KilledWriterLeavesAVerifiableLogThatARestartContinues) {
  testing::TempDir tmp;
  const std::string dir = tmp.Join("audit");
  std::mt19937 rng(std::random_device{}());
  int torn_tails = 0;
  for (int round = 1; round <= 4; ++round) {
    const int reports = 2 + static_cast<int>(rng() % 12);
    SCOPED_TRACE("round " + std::to_string(round) + ", killed after " + std::to_string(reports) +
                 " flushes");
    const int durable = RunChildAndKill(dir, round, reports);
    ASSERT_GT(durable, 0) << "the child did not run and die as planned";

    // Everything the child heard was durable is there, in order, with no gap; at most a torn
    // tail follows.
    int last_i = 0;
    auto r = VerifyLog(dir, {}, [&](const RecordView& v) {
      if (v.type != RecordType::kDecision) return true;
      const auto j = nlohmann::json::parse(v.payload);
      if (j["round"] != round) return true;
      EXPECT_EQ(j["i"], last_i + 1);
      last_i = j["i"];
      return true;
    });
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    ASSERT_TRUE(r->ok()) << FindingName(r->problem->finding) << ": " << r->problem->detail;
    EXPECT_GE(last_i, durable);
    EXPECT_FALSE(r->clean_close);
    torn_tails += r->torn_tail.has_value();

    // A restart continues the chain and says the previous writer did not close the log.
    auto signer = LoadOrCreateRawKey(dir + ".key");
    ASSERT_TRUE(signer.has_value());
    OpenReport report;
    auto log = AuditLog::Open(dir, {}, **signer, core::SystemClock::Get(), &report);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    EXPECT_FALSE(report.previous_clean);
    EXPECT_EQ(report.last_seq, r->last_seq);
    ASSERT_TRUE((*log)->Append(RecordType::kModeChange, {{"round", round}}).ok());
    ASSERT_TRUE((*log)->Close().ok());
    const VerifyReport after = testing::Verify(dir);
    ASSERT_TRUE(after.ok()) << after.problem->detail;
    EXPECT_FALSE(after.torn_tail.has_value());
    EXPECT_TRUE(after.clean_close);
  }
  RecordProperty("torn_tails", torn_tails);
}

}  // namespace
}  // namespace vigil::audit
