#pragma once

// A fake /proc tree in a fresh temporary folder, removed with everything in it when the object
// goes out of scope. Processes are written the way the kernel lays them out, so the process tree
// reads them through the same code as the real /proc.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace vigil::enrich::testing {

struct FakeProcess {
  uint32_t pid = 0;
  uint32_t tgid = 0;  // 0: same as pid
  uint32_t ppid = 0;
  std::string comm = "prog";
  char state = 'S';
  uint64_t start_ticks = 100;
  uint32_t ruid = 1000;
  uint32_t euid = 1000;
  std::string exe;                // "": no exe link (a kernel thread)
  std::vector<std::string> argv;  // written NUL-separated with a trailing NUL
  std::string cgroup = "0::/user.slice/user-1000.slice/session-1.scope\n";
};

class FakeProc {
 public:
  FakeProc() {
    static std::atomic<int> counter{0};
    root_ = std::filesystem::temp_directory_path() /
            ("vigil-enrich-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FakeProc() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;

  std::string root() const { return root_.string(); }

  // Writes `relative` (creating folders) with `content`.
  void Write(const std::string& relative, const std::string& content) const {
    const std::filesystem::path p = root_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
  }

  void Add(const FakeProcess& p) const {
    const std::string dir = std::to_string(p.pid) + "/";
    // Fields 1..22 of proc(5), then a few more as the kernel writes them.
    std::string stat =
        std::to_string(p.pid) + " (" + p.comm + ") " + p.state + " " + std::to_string(p.ppid);
    for (int field = 5; field <= 21; ++field) stat += " 0";
    stat += " " + std::to_string(p.start_ticks) + " 1000 200 0 0\n";
    Write(dir + "stat", stat);
    const std::string uid = std::to_string(p.ruid) + "\t" + std::to_string(p.euid);
    Write(dir + "status", "Name:\t" + p.comm + "\nState:\t" + p.state + "\nTgid:\t" +
                              std::to_string(p.tgid == 0 ? p.pid : p.tgid) + "\nPid:\t" +
                              std::to_string(p.pid) + "\nPPid:\t" + std::to_string(p.ppid) +
                              "\nUid:\t" + uid + "\t" + uid + "\nGid:\t0\t0\t0\t0\n");
    std::string cmdline;
    for (const std::string& arg : p.argv) cmdline += arg + '\0';
    Write(dir + "cmdline", cmdline);
    Write(dir + "cgroup", p.cgroup);
    if (!p.exe.empty()) std::filesystem::create_symlink(p.exe, root_ / (dir + "exe"));
  }

 private:
  std::filesystem::path root_;
};

}  // namespace vigil::enrich::testing
