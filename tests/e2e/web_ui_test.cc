// The hub's web UI end to end, as root, in a real browser: a `vigil hub` on a free loopback port
// with users added by `vigil hub user add`, an incident from `vigil hub ingest`, and a real
// `vigil agent` (enforce mode, a rule that escalates a freeze, the hub sink) waiting on the
// hub for a decision. Debian's Chromium, driven by playwright-core (tests/e2e/web/ui_flow.js
// through scripts/playwright.sh), logs in (a wrong password first), adjudicates the incident and
// approves the escalation; the agent then freezes the process, and the hub and the agent's audit
// logs say who decided. Screenshots of every page are kept under the build folder.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "web_e2e.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::ReadAll;
using vigil::e2e::SpawnOpener;
using vigil::e2e::WaitFor;

// One model verdict and one rule decision about process "worker" (pid 4242) on web-1.
std::string Findings() {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  json verdict = {{"class_uid", 2004},
                  {"time", now_ms},
                  {"severity_id", 4},
                  {"process", {{"pid", 4242}, {"name", "worker"}}},
                  {"finding_info",
                   {{"title", "Anomalous system-call sequence <script>alert(1)</script>"},
                    {"uid", "worker:4242"},
                    {"analytic", {{"name", "ngram"}, {"version", "1"}, {"type_id", 4}}}}},
                  {"vigil",
                   {{"score", 0.93},
                    {"anomalous", true},
                    {"explanation", {{{"what", "open>mmap>execve"}, {"weight", 0.6}}}}}}};
  json decision = {{"class_uid", 2004},
                   {"time", now_ms + 5},
                   {"severity_id", 3},
                   {"message", "worker spawned a shell"},
                   {"process", {{"pid", 4242}, {"name", "worker"}}},
                   {"finding_info", {{"title", "shell"}, {"uid", "p:1"}}},
                   {"vigil",
                    {{"rule", "shell"},
                     {"action", "alert"},
                     {"ml", {{"score", 0.93}, {"model", "ngram"}}}}}};
  return verdict.dump() + "\n" + decision.dump() + "\n";
}

TEST(WebUiE2eTest, LogsInAdjudicatesAndApprovesAnEscalationAnAgentWaitsOn) {
  if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
  if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
  const auto t0 = std::chrono::steady_clock::now();
  // Progress on stdout, flushed before anything forks.
  auto at = [&](const char* what) {
    std::printf("[%.1f s] %s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), what);
    std::fflush(stdout);
  };
  const fs::path dir = fs::temp_directory_path() / ("vigil-web-e2e-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "cli");
  struct Cleanup {
    fs::path d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};
  // Kept after the test: the screenshots.
  const fs::path shots = fs::current_path() / "web-ui-screenshots";
  fs::remove_all(shots);
  fs::create_directories(shots);
  auto vigil = [&](const std::string& args) { return vigil::e2e::RunVigil(dir / "cli", args); };

  // The agent's rule: opening the trigger file asks the hub whether to freeze the process.
  const fs::path trigger = dir / "approve-me";
  std::ofstream(trigger) << "x";
  const fs::path rules = dir / "rules.yaml";
  std::ofstream(rules) << "- rule: Web approval\n  desc: d\n  condition: evt.type in (open, "
                          "openat) and fd.name = "
                       << trigger.string()
                       << "\n  output: Web approval opened by %proc.name\n  priority: WARNING\n"
                          "  action: {type: escalate, mode: enforce, proposed: freeze, timeout: "
                          "120s, fallback: alert}\n";
  const fs::path config = dir / "vigil.yaml";
  std::ofstream(config) << "host: web-1\nagent:\n  learn: 2s\n  events: [open]\n"
                           "metrics:\n  enabled: false\n"
                           "policy:\n  mode: enforce\n  stage: enforce-all\n  files: ["
                        << rules.string() << "]\n";
  at("setting up");
  auto r = vigil("keys init --dir " + (dir / "keys").string() + " && " + VIGIL_BINARY +
                 " policy sign " + rules.string() + " --key-dir " + (dir / "keys").string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // The hub's people and the agent's token.
  const fs::path hub_state = dir / "hub";
  const std::string state = " --state-dir " + hub_state.string();
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::AddWebUsers(
      dir, hub_state, {{"ana", "analyst"}, {"root-admin", "admin"}, {"vic", "viewer"}}));
  r = vigil("hub token --role agent --subject web-1 --ttl 1h" + state);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir / "agent.token") << r.out;
  r = vigil("hub token --role viewer --subject test --ttl 1h" + state);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const httplib::Headers as_viewer{{"Authorization", "Bearer " + r.out.substr(0, r.out.find('\n'))}};
  r = vigil("hub token --role admin --subject test --ttl 1h" + state);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const httplib::Headers as_admin{{"Authorization", "Bearer " + r.out.substr(0, r.out.find('\n'))}};

  at("the hub starts");
  vigil::e2e::WebHub hub;
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::StartWebHub(dir, hub_state, &hub));
  const std::string& url = hub.url;
  httplib::Client http("127.0.0.1", hub.port);

  // An incident to adjudicate.
  std::ofstream(dir / "findings.jsonl") << Findings();
  r = vigil("hub ingest " + (dir / "findings.jsonl").string() + " --server " + url +
            " --token-file " + (dir / "agent.token").string() + " --host web-1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto listed = http.Get("/v1/incidents", as_viewer);
  ASSERT_TRUE(listed && listed->status == 200);
  const json incidents = json::parse(listed->body)["incidents"];
  ASSERT_EQ(incidents.size(), 1u) << incidents;
  const int64_t incident = incidents[0]["id"];

  // The agent, and a process whose freeze it asks the hub about.
  const fs::path agent_out = dir / "agent.out", agent_err = dir / "agent.err";
  pid_t agent = vigil::e2e::Spawn(
      {VIGIL_BINARY, "agent", "--config", config.string(), "--state-dir", dir.string(), "--mode",
       "enforce", "--relearn", "--duration", "90s", "--sink", "hub:" + url, "--hub-drain", "2s",
       "--hub-token-file",
       (dir / "agent.token").string()},
      agent_out, agent_err);
  struct Reaper {
    std::vector<pid_t> pids;
    ~Reaper() {
      for (pid_t p : pids) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
    }
  } reaper{{agent}};
  ASSERT_TRUE(WaitFor([&] { return ReadAll(agent_err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(40)))
      << ReadAll(agent_err);
  at("the agent detects");
  // The agent registered while it learned; the hub shows it in enforce mode from its next
  // heartbeat (every 10 s), which the browser's agent page checks.
  std::string agents_seen;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto got = http.Get("/v1/agents", as_admin);
        if (!got || got->status != 200) return false;
        agents_seen = got->body;
        const json list = json::parse(got->body, nullptr, false);
        if (!list.is_object() || !list["agents"].is_array()) return false;
        for (const json& a : list["agents"]) {
          if (a.value("host", "") == "web-1" && a.value("mode", "") == "enforce") return true;
        }
        return false;
      },
      std::chrono::seconds(40)))
      << agents_seen << ReadAll(agent_err);
  const pid_t opener = SpawnOpener(trigger);
  reaper.pids.push_back(opener);

  // The browser.
  at("the browser starts");
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::RunBrowserFlow(
      "ui_flow.js",
      "VIGIL_HUB_URL=" + url + " VIGIL_INCIDENT=" + std::to_string(incident) +
          " VIGIL_ESCALATION_RULE='Web approval' VIGIL_ANALYST=ana:ana-has-a-long-password"
          " VIGIL_ADMIN=root-admin:root-admin-has-a-long-password"
          " VIGIL_VIEWER=vic:vic-has-a-long-password",
      shots, dir, 12, [&] { return "\nagent:\n" + ReadAll(agent_err); }));
  at("the browser is done");

  // The agent got "approve" and froze the process.
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll("/proc/" + std::to_string(opener) + "/cgroup").find("/vigil/a") !=
               std::string::npos;
      },
      std::chrono::seconds(20)))
      << "the approved freeze was not carried out\n"
      << ReadAll(agent_err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(agent_err).find("approved (hub:ana)") != std::string::npos; },
                      std::chrono::seconds(10)))
      << ReadAll(agent_err);
  at("the agent froze the process");
  kill(agent, SIGTERM);
  int agent_status = 0;
  ASSERT_EQ(waitpid(agent, &agent_status, 0), agent);
  reaper.pids.erase(reaper.pids.begin());
  EXPECT_TRUE(WIFEXITED(agent_status) && WEXITSTATUS(agent_status) == 0) << ReadAll(agent_err);
  r = vigil("audit show " + (dir / "audit").string() + " --type escalation --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("by":"hub:ana")"), std::string::npos) << r.out;

  at("the agent froze the process and stopped");
  // The hub kept the label, and audited the logins (the wrong password too) and the decisions.
  auto one = http.Get("/v1/incidents/" + std::to_string(incident), as_viewer);
  ASSERT_TRUE(one && one->status == 200);
  const json labelled = json::parse(one->body)["incident"];
  EXPECT_EQ(labelled["label"], "true_positive");
  EXPECT_EQ(labelled["labelled_by"], "ana");
  EXPECT_EQ(labelled["note"], "confirmed in the browser test");
  ASSERT_EQ(vigil::e2e::StopVigil(hub.process.pid), 0) << ReadAll(dir / "hub.err");
  r = vigil("audit show " + (hub_state / "audit").string() + " --type access-grant --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> logins;  // "subject result"
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const json p = json::parse(line)["payload"];
    if (p["action"] == "login") logins.push_back(p["subject"].get<std::string>() + " " +
                                                 p["result"].get<std::string>());
  }
  EXPECT_EQ(logins, (std::vector<std::string>{"ana failed", "ana ok", "vic ok", "root-admin ok"}));
  r = vigil("audit show " + (hub_state / "audit").string() + " --type escalation --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("action":"approved")"), std::string::npos) << r.out;
}

}  // namespace
