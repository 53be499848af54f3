#pragma once

// Test certificates made at test time with the openssl CLI, in a private temporary folder:
// a CA ("ca"), another CA ("otherca"), a server certificate for localhost and 127.0.0.1
// ("server"), a client certificate with CN ci-runner from the CA ("client"), and one with the
// same CN from the other CA ("rogue"). Each as NAME.pem with its unencrypted key NAME.key.
//
//   vigil::testing::TestPki pki;
//   if (!pki.ok) GTEST_SKIP() << "the openssl CLI could not make test certificates";
//   Connect(pki("ca.pem"), pki("client.pem"), pki("client.key"));

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace vigil::testing {

class TestPki {
 public:
  bool ok = false;

  TestPki() {
    static int serial = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil-test-pki-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
    std::filesystem::create_directories(dir_);
    ok = Ca("ca") && Ca("otherca") &&
         Leaf("server", "localhost", "ca",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n") &&
         Leaf("client", "ci-runner", "ca", "extendedKeyUsage=clientAuth\n") &&
         Leaf("rogue", "ci-runner", "otherca", "extendedKeyUsage=clientAuth\n");
  }
  ~TestPki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // The path of one of the files ("ca.pem", "client.key", ...).
  std::string operator()(const std::string& file) const { return (dir_ / file).string(); }
  std::string Read(const std::string& file) const {
    std::ifstream in(dir_ / file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static bool Sh(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
  }
  bool Ca(const std::string& n) const {
    const std::string d = dir_.string();
    return Sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
              "-subj /CN=" + n + " -keyout " + d + "/" + n + ".key -out " + d + "/" + n + ".pem");
  }
  bool Leaf(const std::string& n, const std::string& cn, const std::string& signer,
            const std::string& ext) const {
    const std::string d = dir_.string();
    std::ofstream(dir_ / (n + ".ext")) << ext;
    return Sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + cn +
              " -keyout " + d + "/" + n + ".key -out " + d + "/" + n + ".csr") &&
           Sh("openssl x509 -req -in " + d + "/" + n + ".csr -CA " + d + "/" + signer +
              ".pem -CAkey " + d + "/" + signer + ".key -CAcreateserial -days 2 -extfile " + d +
              "/" + n + ".ext -out " + d + "/" + n + ".pem");
  }

  std::filesystem::path dir_;
};

}  // namespace vigil::testing
