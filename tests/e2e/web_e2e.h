#pragma once

// What the web UI's browser tests share (web_ui_test.cc, web_ui_agents_test.cc): a `vigil hub`
// with people added by `vigil hub user add`, and a flow script run in Debian's Chromium by
// scripts/playwright.sh.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "vigil_cli.h"

namespace vigil::e2e {

// A `vigil hub --state-dir STATE` on a free loopback port, stopped when this goes away.
struct WebHub {
  Background process;
  int port = 0;
  std::string url;
  ~WebHub() { StopVigil(process.pid); }
};

// Adds each {name, role} with the password "<name>-has-a-long-password" to the users of the
// hub state in `state` (work files in `dir`). Run before the hub starts (as `vigil hub token`).
inline void AddWebUsers(const std::filesystem::path& dir, const std::filesystem::path& state,
                        const std::vector<std::pair<std::string, std::string>>& people) {
  std::filesystem::create_directories(dir / "cli");
  for (const auto& [name, role] : people) {
    std::ofstream(dir / (name + ".pw")) << name << "-has-a-long-password\n";
    const CmdResult r = RunVigil(
        dir / "cli", "hub user add " + name + " --role " + role + " --state-dir " + state.string() +
                         " --password-file " + (dir / (name + ".pw")).string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
}

// Starts the hub of `state` (its output in `dir`/hub.out, hub.err); fails the test when it does
// not get ready.
inline void StartWebHub(const std::filesystem::path& dir, const std::filesystem::path& state,
                        WebHub* hub) {
  hub->process =
      StartVigil({"hub", "--state-dir", state.string(), "--listen", "127.0.0.1:0", "--json"},
                 dir / "hub.out", dir / "hub.err");
  ASSERT_EQ(hub->process.error, "");
  hub->port = nlohmann::json::parse(hub->process.ready_line)["port"];
  hub->url = "http://127.0.0.1:" + std::to_string(hub->port);
}

// Runs tests/e2e/web/SCRIPT with the environment assignments `env` ("K=V K2=V2 ..."; values
// quoted by the caller) and VIGIL_SHOTS=`shots`; its stdout and stderr go to files in `dir`.
// Fails the test unless it exits 0 printing {"ok":true,"screenshots":[...]} with `screenshots`
// files of more than 1000 bytes each; `context_on_failure` adds to the failure's message.
inline void RunBrowserFlow(const std::string& script, const std::string& env,
                           const std::filesystem::path& shots, const std::filesystem::path& dir,
                           size_t screenshots,
                           const std::function<std::string()>& context_on_failure = {}) {
  const std::filesystem::path out = dir / (script + ".out"), err = dir / (script + ".err");
  const std::string cmd = env + " VIGIL_SHOTS=" + shots.string() + " " + VIGIL_SOURCE_DIR +
                          "/scripts/playwright.sh " + VIGIL_SOURCE_DIR + "/tests/e2e/web/" +
                          script + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  std::printf("web UI screenshots: %s\n", shots.c_str());
  std::fflush(stdout);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << ReadAll(out) << ReadAll(err) << "\nhub:\n"
      << ReadAll(dir / "hub.err") << (context_on_failure ? context_on_failure() : std::string());
  const nlohmann::json result = nlohmann::json::parse(ReadAll(out), nullptr, false);
  ASSERT_TRUE(result.is_object()) << ReadAll(out);
  EXPECT_EQ(result["ok"], true);
  EXPECT_EQ(result["screenshots"].size(), screenshots);
  for (const auto& f : result["screenshots"]) {
    EXPECT_GT(std::filesystem::file_size(f.get<std::string>()), 1000u) << f;
  }
}

}  // namespace vigil::e2e
