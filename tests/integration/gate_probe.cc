// gate_probe: makes one kind of system call and reports how it ended and how long it took, for
// the gate tests and benchmarks (run under `vigil run`, a SeccompGate, or beside a fanotify gate).
//
//   gate_probe connect IPV4 PORT [N]   N connects (default 1), each on a fresh TCP socket
//   gate_probe open PATH [N]           N open(O_RDONLY) calls
//   gate_probe exec PATH [N]           N fork + execv(PATH) (the child exits at once), timing
//                                      fork to the child's exit
//   gate_probe exec2 PATH PATH2 [N]    N pairs: an exec of PATH, then one of PATH2 (lines
//                                      alternate), e.g. a gated and an ungated copy
// Prints one line per call: "errno=E ns=T" (E 0 on success). Exit code: 0 when the last call
// succeeded, 1 otherwise, 2 for bad usage.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: gate_probe connect IPV4 PORT [N] | open PATH [N] | exec PATH [N] "
                 "| exec2 PATH PATH2 [N]\n");
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
