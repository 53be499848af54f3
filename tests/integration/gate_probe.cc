// gate_probe: makes one kind of system call and reports how it ended and how long it took, for
// the gate tests and benchmarks (run under `vigil run`, a SeccompGate, or beside a fanotify gate).
//
//   gate_probe connect IPV4 PORT [N]   N connects (default 1), each on a fresh TCP socket
//   gate_probe open PATH [N]           N open(O_RDONLY) calls
//   gate_probe exec PATH [N]           N fork + execv(PATH) (the child exits at once), timing
//                                      fork to the child's exit
//   gate_probe exec2 PATH PATH2 [N]    N pairs: an exec of PATH, then one of PATH2 (lines
//                                      alternate), e.g. a gated and an ungated copy
//   gate_probe leave OUT PATH...        for each PATH (the i-th from 0), a child that opens it
//                                      (openat, O_RDONLY) and writes "errno=E" to OUT.i; exits
//                                      (0) once every child is blocked in its open (held by a
//                                      gate) and the file OUT.go exists (the test's signal),
//                                      leaving the children behind; 1 when not within 10 s
// Prints one line per call: "errno=E ns=T" (E 0 on success). Exit code: 0 when the last call
// succeeded, 1 otherwise, 2 for bad usage.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

long long Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

int Connect(const char* ip, int port) {
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    close(s);
    return EINVAL;
  }
  const int rc = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  const int err = rc == 0 ? 0 : errno;
  close(s);
  return err;
}

int Open(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

// errno of the exec as the child saw it (sent back through a pipe), 0 when it ran.
int Exec(const char* path) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  const pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    char* const argv[] = {const_cast<char*>(path), nullptr};
    execv(path, argv);
    const int e = errno;
    (void)!write(p[1], &e, sizeof e);
    _exit(127);
  }
  close(p[1]);
  int err = 0;
  if (read(p[0], &err, sizeof err) != sizeof err) err = 0;
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return err;
}

// gate_probe leave: see the usage above. Everything the children need is opened before they are
// released (their files, the parent's /proc/PID/syscall of each), so that nothing the parent does
// afterwards waits on a gate that holds a child's call.
int Leave(const char* out, int n_paths, char** paths) {
  std::vector<int> release, syscall_fds;
  for (int i = 0; i < n_paths; ++i) {
    const std::string out_i = std::string(out) + "." + std::to_string(i);
    const int out_fd = open(out_i.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int p[2];
    if (out_fd < 0 || pipe(p) != 0) return 1;
    const pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      close(p[1]);
      char go = 0;
      if (read(p[0], &go, 1) != 1) _exit(1);
      const long fd = syscall(SYS_openat, AT_FDCWD, paths[i], O_RDONLY | O_CLOEXEC);
      const int err = fd < 0 ? errno : 0;
      dprintf(out_fd, "errno=%d\n", err);
      _exit(0);
    }
    close(p[0]);
    close(out_fd);
    release.push_back(p[1]);
    const std::string sc = "/proc/" + std::to_string(pid) + "/syscall";
    const int sc_fd = open(sc.c_str(), O_RDONLY | O_CLOEXEC);
    if (sc_fd < 0) return 1;
    syscall_fds.push_back(sc_fd);
  }
  for (int fd : release) {
    if (write(fd, "g", 1) != 1) return 1;
  }
  // A child asleep in openat (/proc/PID/syscall names the call only while it sleeps in it) is
  // held by the gate: before the gate answers, nothing else in openat can sleep.
  const std::string openat = std::to_string(SYS_openat) + " ";
  const long long give_up = Now() + 10'000'000'000LL;
  for (int fd : syscall_fds) {
    while (true) {
      char buf[256];
      const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)).rfind(openat, 0) == 0) break;
      if (Now() > give_up) return 1;
      const timespec ms{0, 1'000'000};
      nanosleep(&ms, nullptr);
    }
  }
  // (stat is not a gated call.)
  const std::string go = std::string(out) + ".go";
  struct stat st {};
  while (stat(go.c_str(), &st) != 0) {
    if (Now() > give_up) return 1;
    const timespec ms{0, 1'000'000};
    nanosleep(&ms, nullptr);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "leave") return Leave(argv[2], argc - 3, argv + 3);
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: gate_probe connect IPV4 PORT [N] | open PATH [N] | exec PATH [N] "
                 "| exec2 PATH PATH2 [N] | leave OUT PATH...\n");
    return 2;
  }
  const std::string what = argv[1];
  const bool is_connect = what == "connect";
  if (!is_connect && what != "open" && what != "exec" && what != "exec2") return 2;
  if ((is_connect || what == "exec2") && argc < 4) return 2;
  const int n_arg = is_connect || what == "exec2" ? 4 : 3;
  const int n = argc > n_arg ? std::atoi(argv[n_arg]) : 1;
  int err = 0;
  for (int i = 0; i < n; ++i) {
    const long long t0 = Now();
    if (is_connect) {
      err = Connect(argv[2], std::atoi(argv[3]));
    } else if (what == "open") {
      err = Open(argv[2]);
    } else if (what == "exec2") {
      err = Exec(argv[2]);
      const long long t1 = Now();
      std::printf("errno=%d ns=%lld\n", err, t1 - t0);
      const long long t2 = Now();
      err = Exec(argv[3]);
      std::printf("errno=%d ns=%lld\n", err, Now() - t2);
      continue;
    } else {
      err = Exec(argv[2]);
    }
    const long long t1 = Now();
    std::printf("errno=%d ns=%lld\n", err, t1 - t0);
  }
  return err == 0 ? 0 : 1;
}
