// Agent enrolment through the CLI: `vigil hub` with an agent gRPC port, `vigil hub enrol-token
// create` while it runs, `vigil agent enrol` pinned to the hub CA (once, then the same token
// refused), and the enrolment in the hub's audit log after a clean stop.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;

namespace {

TEST(EnrolCliTest, AnAgentEnrolsOnceWithATokenFromTheCli) {
  const fs::path dir = fs::temp_directory_path() / ("enrol_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "run");
  const fs::path state = dir / "state";
  std::ofstream(dir / "hub.yaml") << "listen: 127.0.0.1:0\nagents:\n  listen: 127.0.0.1:0\n";
  auto hub = vigil::e2e::StartVigil(
      {"hub", "--config", (dir / "hub.yaml").string(), "--state-dir", state.string(), "--json"},
      dir / "hub.out", dir / "hub.err");
  ASSERT_TRUE(hub.error.empty()) << hub.error;
  const json ready = json::parse(hub.ready_line, nullptr, false);
  ASSERT_TRUE(ready.is_object() && ready["agents"].is_object()) << hub.ready_line;
  const std::string addr = "127.0.0.1:" + std::to_string(ready["agents"]["port"].get<int>());
  const std::string ca = (state / "ca" / "ca.pem").string();

  CmdResult t = vigil::e2e::RunVigil(dir / "run", "hub enrol-token create --state-dir " +
                                                      state.string() + " --group canary --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const std::string token = json::parse(t.out)["token"];

  CmdResult e = vigil::e2e::RunVigil(
      dir / "run", "agent enrol --hub " + addr + " --token " + token + " --ca " + ca + " --dir " +
                       (dir / "cert").string() + " --host web-1 --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const json enrolled = json::parse(e.out);
  EXPECT_EQ(enrolled["host"], "web-1");
  EXPECT_EQ(enrolled["group"], "canary");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "cert" / "agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(vigil::e2e::ReadAll(dir / "cert" / "agent.pem").find("BEGIN CERTIFICATE"),
            std::string::npos);

  CmdResult again = vigil::e2e::RunVigil(
      dir / "run", "agent enrol --hub " + addr + " --token " + token + " --ca " + ca + " --dir " +
                       (dir / "cert2").string() + " --host web-2");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already used"), std::string::npos) << again.err;
  EXPECT_FALSE(fs::exists(dir / "cert2" / "agent.key"));

  EXPECT_EQ(vigil::e2e::StopVigil(hub.pid), 0);
  CmdResult show = vigil::e2e::RunVigil(dir / "run", "audit show " + (state / "audit").string());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("enrol-token-created"), std::string::npos);
  EXPECT_NE(show.out.find("agent-enrolled"), std::string::npos);
  EXPECT_NE(show.out.find("agent-enrol-refused"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
