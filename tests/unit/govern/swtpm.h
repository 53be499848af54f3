#pragma once

// A private swtpm (TPM 2.0 emulator) for a test: started on two free loopback ports with its
// state in a temporary folder, stopped (SIGTERM, then SIGKILL) when the object goes away. The
// TPM is not started up: the code under test sends TPM2_Startup through ESAPI.
//
//   Swtpm tpm;
//   if (!tpm.ok()) GTEST_SKIP() << tpm.why();
//   ... Measurer::Open({tpm.tcti(), ...})
//
// With a SwtpmCa, the TPM is first manufactured by swtpm_setup (--create-ek-cert
// --create-platform-cert): its RSA EK certificate, signed by that CA through swtpm_localca, is in
// NV index 0x01c00002 as on a real TPM. The CA (a root and an intermediate that signs) lives in
// its own folder; bundle() is the PEM of both, the trusted EK CA bundle of a verifier.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vigil::govern::testing {

inline std::filesystem::path UniqueTempDir(const std::string& prefix) {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs argv (looked up in PATH) with stdout and stderr to `log`; its exit status (-1: not run).
inline int RunQuietly(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class SwtpmCa {
 public:
  SwtpmCa() : dir_(UniqueTempDir("vigil-swtpm-ca-")) {
    const std::string d = dir_.string();
    std::ofstream(d + "/localca.conf") << "statedir = " << d << "/ca\nsigningkey = " << d
                                       << "/ca/signkey.pem\nissuercert = " << d
                                       << "/ca/issuercert.pem\ncertserial = " << d
                                       << "/ca/certserial\n";
    std::ofstream(d + "/localca.options") << "--platform-manufacturer Vigil\n"
                                             "--platform-version 2.1\n--platform-model test\n";
    std::ofstream(d + "/setup.conf") << "create_certs_tool = swtpm_localca\n"
                                        "create_certs_tool_config = "
                                     << d << "/localca.conf\ncreate_certs_tool_options = " << d
                                     << "/localca.options\nactive_pcr_banks = sha256\n";
    std::filesystem::create_directories(dir_ / "ca");
  }
  ~SwtpmCa() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SwtpmCa(const SwtpmCa&) = delete;
  SwtpmCa& operator=(const SwtpmCa&) = delete;

  std::string setup_config() const { return (dir_ / "setup.conf").string(); }
  // The intermediate CA that signs EK certificates: its certificate and key (PEM files).
  std::string issuer_cert() const { return (dir_ / "ca/issuercert.pem").string(); }
  std::string issuer_key() const { return (dir_ / "ca/signkey.pem").string(); }
  std::string log() const { return (dir_ / "setup.log").string(); }
  // The root and the intermediate CA (exist once a TPM was manufactured with this CA).
  std::string bundle() const {
    std::string out;
    for (const char* f : {"ca/swtpm-localca-rootca-cert.pem", "ca/issuercert.pem"}) {
      std::ifstream in(dir_ / f);
      out.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
  }

 private:
  std::filesystem::path dir_;
};

class Swtpm {
 public:
  explicit Swtpm(const SwtpmCa* ca = nullptr) {
    dir_ = UniqueTempDir("vigil-swtpm-");
    if (ca != nullptr && !Manufacture(*ca)) return;
    for (int attempt = 0; attempt < 20 && pid_ < 0; ++attempt) Start();
  }
  ~Swtpm() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  bool ok() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  std::string tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  bool Manufacture(const SwtpmCa& ca) {
    const int rc = RunQuietly({"swtpm_setup", "--tpm2", "--tpmstate", dir_.string(),
                               "--create-ek-cert", "--create-platform-cert", "--config",
                               ca.setup_config()},
                              ca.log());
    if (rc == 0) return true;
    why_ = rc < 0 ? "swtpm_setup is not installed (apt-get install swtpm-tools)"
                  : "swtpm_setup failed (exit " + std::to_string(rc) + "); see " + ca.log();
    return false;
  }

  // Binds (`bind_it`) or connects to 127.0.0.1:port; true when that worked.
  static bool TryLoopback(int port, bool bind_it) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto* sa = reinterpret_cast<sockaddr*>(&a);
    const bool ok = (bind_it ? bind(fd, sa, sizeof(a)) : connect(fd, sa, sizeof(a))) == 0;
    close(fd);
    return ok;
  }
  static bool PortFree(int port) { return TryLoopback(port, true); }
  static bool Accepts(int port) { return TryLoopback(port, false); }

  void Start() {
    static std::mt19937 rng(std::random_device{}());
    const int port = std::uniform_int_distribution<int>(20000, 60000)(rng) & ~1;
    if (!PortFree(port) || !PortFree(port + 1)) return;
    const std::string p = std::to_string(port), c = std::to_string(port + 1);
    std::vector<std::string> argv = {
        "swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + dir_.string(), "--server",
        "type=tcp,port=" + p + ",bindaddr=127.0.0.1", "--ctrl",
        "type=tcp,port=" + c + ",bindaddr=127.0.0.1", "--flags", "not-need-init"};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, "swtpm", &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      why_ = "swtpm is not installed (apt-get install swtpm swtpm-tools)";
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        why_ = "swtpm exited at start (port " + p + " taken?)";
        return;
      }
      if (Accepts(port) && Accepts(port + 1)) {
        pid_ = pid;
        port_ = port;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    why_ = "swtpm did not listen within 10 s";
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string why_ = "swtpm could not be started";
};

}  // namespace vigil::govern::testing
