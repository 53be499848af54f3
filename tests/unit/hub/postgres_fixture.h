#pragma once

// A real PostgreSQL 15 for the hub's tests: one server per test binary, started at first use
// (initdb + postgres from /usr/lib/postgresql/15/bin) in a private temporary directory, on
// 127.0.0.1 and a free port (another one if it was taken before the server bound it), with its
// unix socket in that directory; a fresh database per test.
// As root the server runs as the `postgres` system user (PostgreSQL refuses root; the Debian
// package creates the user). It is stopped when the test binary exits, and, should the binary
// die without exiting, by the kernel's parent-death signal (SIGINT: a fast shutdown).
// Missing binaries are a failure: scripts/install-deps.sh test installs postgresql.

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../pipeline/loopback.h"

namespace vigil::hub::testing {

class PostgresServer {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";

  // The binary's server, started at the first call. error() says why it is not running.
  static PostgresServer& Shared() {
    static PostgresServer server;
    return server;
  }
  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }
  int port() const { return port_; }

  // Creates an empty database and returns its name (Uri(name) connects to it as the superuser,
  // trust authentication on loopback), or "" with *why set.
  std::string NewDatabase(std::string* why) {
    if (!ok()) {
      *why = error_;
      return "";
    }
    const std::string name = "hub_t" + std::to_string(next_db_.fetch_add(1));
    if (!Admin("CREATE DATABASE " + name + " TEMPLATE template0 STRATEGY = FILE_COPY", why)) {
      return "";
    }
    return name;
  }
  // Drops a database of NewDatabase, disconnecting its clients.
  bool DropDatabase(const std::string& name, std::string* why) {
    return Admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", why);
  }
  std::string Uri(const std::string& db, const std::string& userinfo = "postgres") const {
    return "postgresql://" + userinfo + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  // Runs one statement as the superuser in `db`; false with *why on failure.
  bool Admin(const std::string& sql, std::string* why, const std::string& db = "postgres") {
    PGconn* c = PQconnectdb(Conninfo(db).c_str());
    bool good = PQstatus(c) == CONNECTION_OK;
    if (good) {
      PGresult* r = PQexec(c, sql.c_str());
      const ExecStatusType st = PQresultStatus(r);
      good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
      PQclear(r);
    }
    if (!good) *why = sql + ": " + PQerrorMessage(c);
    PQfinish(c);
    return good;
  }

  ~PostgresServer() { Stop(); }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

 private:
  PostgresServer() { error_ = Start(); }

  std::string Conninfo(const std::string& db) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + db +
           " connect_timeout=5";
  }

  // Forks and execs argv as the server's user with a fixed environment, output to `log`.
  pid_t Spawn(const std::vector<std::string>& args, const std::string& log) const {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string home = "HOME=" + dir_;
    const char* envp[] = {"LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin", home.c_str(), nullptr};
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    // The child: only async-signal-safe calls from here.
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
    const int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) ::dup2(in, 0);
    if (::chdir(dir_.c_str()) != 0) ::_exit(126);
    if (as_uid_ != static_cast<uid_t>(-1)) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(as_gid_) != 0 || ::setuid(as_uid_) != 0) {
        ::_exit(126);
      }
    }
    // Set after the change of user (which clears it); the parent may already be gone.
    if (::prctl(PR_SET_PDEATHSIG, SIGINT) != 0 || ::getppid() != parent) ::_exit(126);
    ::execve(argv[0], argv.data(), const_cast<char* const*>(envp));
    ::_exit(127);
  }

  static std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

  std::string Start() {
    const std::string bin = kBinDir;
    for (const char* tool : {"initdb", "postgres"}) {
      if (::access((bin + "/" + tool).c_str(), X_OK) != 0) {
        return bin + "/" + tool +
               " not found: install PostgreSQL 15 (scripts/install-deps.sh test installs "
               "postgresql)";
      }
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "vigil-pg-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return "mkdtemp " + tmpl + " failed";
    dir_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr) {
        return "no `postgres` user to run PostgreSQL as (the postgresql package creates it)";
      }
      as_uid_ = pw->pw_uid;
      as_gid_ = pw->pw_gid;
      if (::chown(dir_.c_str(), as_uid_, as_gid_) != 0) return "chown " + dir_ + " failed";
    }
    ::chmod(dir_.c_str(), 0700);
    const std::string data = dir_ + "/data", log = dir_ + "/server.log";
    const pid_t init = Spawn({bin + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E",
                              "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                             log);
    int status = 0;
    if (init < 0 || ::waitpid(init, &status, 0) != init || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      return "initdb failed:\n" + Tail(log);
    }
    // A port picked free can be taken by another process before the server binds it: the server
    // then exits (try another port), and the port answers, but not as this server, until then.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = pipeline::testing::KernelChosenPort();
      pid_ = Spawn({bin + "/postgres", "-D", data, "-h", "127.0.0.1", "-p", std::to_string(port_),
                    "-k", dir_, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
                    "full_page_writes=off", "-c", "max_connections=100", "-c",
                    "shared_buffers=32MB", "-c", "logging_collector=off"},
                   log);
      if (pid_ < 0) return "fork failed";
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (std::chrono::steady_clock::now() < deadline) {
        if (PQping(Conninfo("postgres").c_str()) == PQPING_OK &&
            pipeline::testing::OwnsListener(pid_, static_cast<uint16_t>(port_))) {
          return "";
        }
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;  // e.g. the port was taken meanwhile: try another
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (pid_ > 0) return "postgres did not accept connections within 30 s:\n" + Tail(log);
    }
    return "postgres did not start:\n" + Tail(log);
  }

  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);  // fast shutdown: disconnects clients
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string error_;
  std::string dir_;
  uid_t as_uid_ = static_cast<uid_t>(-1);
  gid_t as_gid_ = static_cast<gid_t>(-1);
  int port_ = 0;
  pid_t pid_ = -1;
  std::atomic<int> next_db_{0};
};

}  // namespace vigil::hub::testing
