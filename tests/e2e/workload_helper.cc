// A small program whose behaviour the agent tests learn and then vary.
//   vigil_workload usual FILE   - opens, reads and closes FILE a few dozen times
//   vigil_workload odd FILE     - the usual work, then things it never does while learning:
//                                 sockets, a connect to loopback, directory churn, an exec
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

void Usual(const char* path) {
  char buf[256];
  for (int i = 0; i < 40; ++i) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
  }
}

void Odd() {
  for (int i = 0; i < 20; ++i) {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(9);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    close(s);
    const std::string dir = "/tmp/vigil-workload-" + std::to_string(getpid());
    (void)mkdir(dir.c_str(), 0700);
    (void)chdir(dir.c_str());
    (void)chdir("/");
    (void)rmdir(dir.c_str());
    (void)setsid();
    (void)getppid();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s usual|odd FILE\n", argv[0]);
    return 2;
  }
  Usual(argv[2]);
  if (std::strcmp(argv[1], "odd") == 0) {
    Odd();
    execl("/bin/true", "true", static_cast<char*>(nullptr));
  }
  return 0;
}
