#pragma once

// Running the vigil binary from an end-to-end test the way a user does: through the shell,
// with stdout and stderr captured to files in the test's own folder.

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace vigil::e2e {

struct CmdResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `vigil ARGS` (VIGIL_BINARY) with stdin from /dev/null; `dir` receives the captured
// stdout and stderr files.
inline CmdResult RunVigil(const std::filesystem::path& dir, const std::string& args) {
  const std::filesystem::path out = dir / "stdout", err = dir / "stderr";
  const std::string cmd = std::string(VIGIL_BINARY) + " " + args + " >" + out.string() + " 2>" +
                          err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  CmdResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

}  // namespace vigil::e2e
