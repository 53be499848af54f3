#pragma once

// Running the vigil binary from an end-to-end test the way a user does: through the shell,
// with stdout and stderr captured to files in the test's own folder.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

// Waits (polling every 50 ms, at most `limit`) until `pred` holds.
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// Starts `args` (args[0] a path) in the background with stdout and stderr to the files given.
inline pid_t Spawn(const std::vector<std::string>& args, const std::filesystem::path& out,
                   const std::filesystem::path& err) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (std::freopen(out.c_str(), "w", stdout) == nullptr) _exit(126);
    if (std::freopen(err.c_str(), "w", stderr) == nullptr) _exit(126);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// A vigil server (serve, hub, ...) started in the background by StartVigil.
struct Background {
  pid_t pid = -1;
  std::string ready_line;  // its first line on stdout
  std::string error;       // why it is not running ("" when it is)
};

// Starts `vigil ARGS` with stdout to `out` and stderr to `err`, and waits at most `wait` for its
// first stdout line (a server's ready line). On failure the process is gone and `error` says
// why, with its stderr.
inline Background StartVigil(const std::vector<std::string>& args, const std::filesystem::path& out,
                             const std::filesystem::path& err,
                             std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  Background b;
  std::vector<std::string> argv{VIGIL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  b.pid = Spawn(argv, out, err);
  if (b.pid < 0) {
    b.error = "fork failed";
    return b;
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = ReadAll(out);
    if (text.find('\n') != std::string::npos) {
      b.ready_line = text.substr(0, text.find('\n'));
      return b;
    }
    int status = 0;
    if (waitpid(b.pid, &status, WNOHANG) == b.pid) {
      b.pid = -1;
      b.error = "vigil exited: " + ReadAll(err);
      return b;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(b.pid, SIGKILL);
  waitpid(b.pid, nullptr, 0);
  b.pid = -1;
  b.error = "vigil did not get ready: " + ReadAll(err);
  return b;
}

// A process that opens `trigger` every 50 ms until it is killed (something for a live agent to
// see); the caller kills and reaps it.
inline pid_t SpawnOpener(const std::filesystem::path& trigger) {
  const pid_t pid = fork();
  if (pid == 0) {
    for (;;) {
      const int fd = open(trigger.c_str(), O_RDONLY);
      if (fd >= 0) close(fd);
      usleep(50'000);
    }
  }
  return pid;
}

// SIGTERM to a StartVigil process; its exit code, or -1 when it did not exit by itself within
// `wait` (it is then killed) or was killed by a signal. Sets `pid` to -1.
inline int StopVigil(pid_t& pid, std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      pid = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A JSONL event file: `streams` streams named "<stream>-N" of program "svc" (pids 100+N), one
// after the other, each `pattern` (syscall numbers of `arch`) `repeats` times, closed by its
// stream_end (replay writes the stream's verdict then).
inline void WriteSyscallStreams(const std::filesystem::path& path, const std::string& stream,
                                int streams, const std::vector<int>& pattern, int repeats,
                                const std::string& arch = "x86_64") {
  std::ofstream f(path);
  for (int s = 0; s < streams; ++s) {
    for (int r = 0; r < repeats; ++r) {
      for (int nr : pattern) {
        f << R"({"kind":"syscall","stream":")" << stream << "-" << s << R"(","proc":{"pid":)"
          << 100 + s << R"(,"comm":"svc"},"syscall":{"arch":")" << arch << R"(","nr":)" << nr
          << "}}\n";
      }
    }
    f << R"({"kind":"stream_end","stream":")" << stream << "-" << s << "\"}\n";
  }
}

}  // namespace vigil::e2e
