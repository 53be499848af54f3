// The governance commands end to end: keys, signatures checked by Debian's minisign both ways,
// the model registry, provenance, and the CycloneDX BOMs checked by the official JSON schema.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Ran {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GovernTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-govern-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs a shell command line with stdout and stderr captured.
  Ran Sh(const std::string& line) {
    const fs::path out = dir_ / ".out", err = dir_ / ".err";
    const int status = std::system((line + " >" + out.string() + " 2>" + err.string() +
                                    " </dev/null").c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out), Slurp(err)};
  }
  Ran Vigil(const std::string& args) { return Sh(std::string(VIGIL_BINARY) + " " + args); }
  std::string P(const std::string& name) const { return (dir_ / name).string(); }

  // A small model trained from a generated event file.
  std::string Model() {
    std::ofstream f(P("train.jsonl"));
    for (int s = 0; s < 10; ++s) {
      for (int r = 0; r < 10; ++r) {
        for (int nr : {0, 1, 2, 3}) {
          f << R"({"kind":"syscall","stream":"s)" << s << R"(","proc":{"pid":)" << 100 + s
            << R"(,"comm":"svc"},"syscall":{"arch":"x86_64","nr":)" << nr << "}}\n";
        }
      }
    }
    f.close();
    const Ran r = Vigil("train --dataset jsonl --data " + P("train.jsonl") + " --out " +
                        P("m.vgm"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return P("m.vgm");
  }

  std::string Keys(const std::string& name) {
    const Ran r = Vigil("keys init --dir " + P(name));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return P(name);
  }

  fs::path dir_;
};

TEST_F(GovernTest, KeysInitWritesMinisignKeyPair) {
  const Ran init = Vigil("keys init --dir " + P("k") + " --json");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const json j = json::parse(init.out);
  struct stat st;
  ASSERT_EQ(stat(P("k/vigil.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(P("k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Slurp(P("k/vigil.pub")),
            "untrusted comment: minisign public key " + j["key_id"].get<std::string>() + "\n" +
                j["public_key"].get<std::string>() + "\n");

  const Ran show = Vigil("keys show --dir " + P("k") + " --json");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(json::parse(show.out)["key_id"], j["key_id"]);

  const Ran again = Vigil("keys init --dir " + P("k"));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("a key already exists (use --force"), std::string::npos) << again.err;
  const Ran forced = Vigil("keys init --dir " + P("k") + " --force --json");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(json::parse(forced.out)["key_id"], j["key_id"]);

  std::ofstream(P("k/vigil.key")) << "untrusted comment: x\nRWQAAEIy\n";
  const Ran bad = Vigil("keys show --dir " + P("k"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find(P("k/vigil.key") + ":2: secret key is 6 bytes, expected 158"),
            std::string::npos) << bad.err;
}

TEST_F(GovernTest, VigilSignaturesVerifyWithMinisign) {
  const std::string model = Model(), keys = Keys("k");
  const Ran sign = Vigil("model sign " + model + " --key-dir " + keys);
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  const Ran ms = Sh("minisign -V -p " + keys + "/vigil.pub -m " + model);
  EXPECT_EQ(ms.exit_code, 0) << ms.out << ms.err;
  EXPECT_NE(ms.out.find("Trusted comment: timestamp:"), std::string::npos) << ms.out;

  const Ran ok = Vigil("model verify " + model + " --key " + keys + "/vigil.pub --json");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(json::parse(ok.out)["valid"], true);

  // Alter one byte in the middle of the model: both verifiers refuse it.
  std::string bytes = Slurp(model);
  bytes[bytes.size() / 2] ^= 0x20;
  std::ofstream(model, std::ios::binary) << bytes;
  EXPECT_NE(Sh("minisign -V -p " + keys + "/vigil.pub -m " + model).exit_code, 0);
  const Ran altered = Vigil("model verify " + model + " --key " + keys + "/vigil.pub");
  EXPECT_EQ(altered.exit_code, 1);
  EXPECT_NE(altered.err.find("FAILED: " + model + ": signature does not match the file"),
            std::string::npos) << altered.err;
}

TEST_F(GovernTest, VerifyNamesWrongKeyAlteredCommentAndMalformedSignature) {
  const std::string model = Model(), keys = Keys("k"), other = Keys("other");
  ASSERT_EQ(Vigil("model sign " + model + " --key-dir " + keys).exit_code, 0);
  const std::string id = json::parse(Vigil("keys show --json --dir " + keys).out)["key_id"];

  const Ran wrong = Vigil("model verify " + model + " --key-dir " + other);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("signed by key " + id + ", not by the given key"), std::string::npos)
      << wrong.err;

  const std::string sig = Slurp(model + ".minisig");
  std::string edited = sig;
  edited.insert(edited.find("\ntrusted comment: ") + 18, "X");  // one byte more
  std::ofstream(model + ".minisig") << edited;
  const Ran comment = Vigil("model verify " + model + " --key-dir " + keys);
  EXPECT_EQ(comment.exit_code, 1);
  EXPECT_NE(comment.err.find("trusted comment was altered"), std::string::npos) << comment.err;

  std::ofstream(model + ".minisig") << sig.substr(0, sig.size() / 2);
  const Ran truncated = Vigil("model verify " + model + " --key-dir " + keys);
  EXPECT_EQ(truncated.exit_code, 2);
  EXPECT_NE(truncated.err.find(model + ".minisig: signature file has 3 lines, expected 4"),
            std::string::npos) << truncated.err;

  fs::remove(model + ".minisig");
  const Ran unsigned_model = Vigil("model verify " + model + " --key-dir " + keys);
  EXPECT_EQ(unsigned_model.exit_code, 2);
  EXPECT_NE(unsigned_model.err.find(model + " is not signed"), std::string::npos)
      << unsigned_model.err;

  std::ofstream(P("junk.vgm")) << "not a model";
  const Ran junk = Vigil("model sign " + P("junk.vgm") + " --key-dir " + keys);
  EXPECT_EQ(junk.exit_code, 2);
  EXPECT_NE(junk.err.find("not a Vigil model file"), std::string::npos) << junk.err;
}

TEST_F(GovernTest, MinisignSignaturesAndKeysWorkInVigil) {
  const std::string model = Model();
  fs::create_directories(P("ms"));
  ASSERT_EQ(Sh("minisign -G -W -p " + P("ms/vigil.pub") + " -s " + P("ms/vigil.key")).exit_code,
            0);
  ASSERT_EQ(Sh("minisign -S -s " + P("ms/vigil.key") + " -m " + model).exit_code, 0);
  const Ran ok = Vigil("model verify " + model + " --key " + P("ms/vigil.pub") + " --json");
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(json::parse(ok.out)["algorithm"], "ED");

  // A key made by minisign signs in vigil, and minisign accepts the result.
  fs::remove(model + ".minisig");
  const Ran sign = Vigil("model sign " + model + " --key-dir " + P("ms"));
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  EXPECT_EQ(Sh("minisign -V -p " + P("ms/vigil.pub") + " -m " + model).exit_code, 0);
}

TEST_F(GovernTest, PolicySignAndVerify) {
  const std::string keys = Keys("k"), policy = P("policy.yaml");
  std::ofstream(policy) << "rules:\n  - name: deny-tmp-exec\n";
  ASSERT_EQ(Vigil("policy sign " + policy + " --key-dir " + keys).exit_code, 0);
  EXPECT_EQ(Sh("minisign -V -p " + keys + "/vigil.pub -m " + policy).exit_code, 0);
  EXPECT_EQ(Vigil("policy verify " + policy + " --key-dir " + keys).exit_code, 0);
  std::ofstream(policy, std::ios::app) << "  - name: added-later\n";
  const Ran altered = Vigil("policy verify " + policy + " --key-dir " + keys);
  EXPECT_EQ(altered.exit_code, 1);
  EXPECT_NE(altered.err.find("vigil policy verify: FAILED"), std::string::npos) << altered.err;
}

TEST_F(GovernTest, RegistryPushListPull) {
  const std::string model = Model(), keys = Keys("k"), reg = P("reg");
  ASSERT_EQ(Vigil("model sign " + model + " --key-dir " + keys).exit_code, 0);
  const Ran push = Vigil("model push " + model + " --registry " + reg + " --json");
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const json pushed = json::parse(push.out);
  const std::string digest = pushed["digest"];
  const Ran sum = Sh("sha256sum " + model);
  EXPECT_EQ(digest, "sha256:" + sum.out.substr(0, 64));
  EXPECT_EQ(pushed["signed"], true);

  const Ran list = Vigil("model list --registry " + reg + " --json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  ASSERT_EQ(json::parse(list.out).size(), 1u);
  EXPECT_EQ(json::parse(list.out)[0]["model"]["family"], "syscall-ngram");

  const Ran pull = Vigil("model pull " + digest.substr(7, 12) + " --registry " + reg +
                         " --out " + P("pulled.vgm"));
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(Slurp(P("pulled.vgm")), Slurp(model));
  EXPECT_EQ(Vigil("model verify " + P("pulled.vgm") + " --key-dir " + keys).exit_code, 0);

  std::ofstream(reg + "/blobs/sha256/" + digest.substr(7), std::ios::app) << "x";
  const Ran damaged = Vigil("model pull " + digest + " --registry " + reg + " --out " +
                            P("again.vgm"));
  EXPECT_EQ(damaged.exit_code, 2);
  EXPECT_NE(damaged.err.find("the registry entry is damaged"), std::string::npos) << damaged.err;
  const Ran unknown = Vigil("model pull deadbeefdeadbeef --registry " + reg + " --out " +
                            P("x.vgm"));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("is not in the registry"), std::string::npos) << unknown.err;
}

TEST_F(GovernTest, ProvenanceStatementDescribesTheModel) {
  const std::string model = Model();
  const Ran r = Vigil("model provenance " + model + " --out " + P("prov.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json d = json::parse(Slurp(P("prov.json")));
  EXPECT_EQ(d["_type"], "https://in-toto.io/Statement/v1");
  EXPECT_EQ(d["predicateType"], "https://slsa.dev/provenance/v1");
  EXPECT_EQ(d["subject"][0]["digest"]["sha256"], Sh("sha256sum " + model).out.substr(0, 64));
  EXPECT_EQ(d["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"],
            Sh("sha256sum " + P("train.jsonl")).out.substr(0, 64));
  EXPECT_TRUE(d["predicate"]["buildDefinition"]["externalParameters"]["params"].contains("order"));
  // The calibration record every family writes (model/calibration.h).
  EXPECT_TRUE(d["predicate"]["runDetails"]["byproducts"][0]["annotations"].contains(
      "calibration.achieved_fpr"));
}

TEST_F(GovernTest, BomsValidateAgainstTheCycloneDxSchema) {
  const std::string model = Model();
  ASSERT_EQ(Vigil("model sbom " + model + " --out " + P("ml-bom.json")).exit_code, 0);
  const Ran sbom = Vigil("sbom --out " + P("sbom.json"));
  ASSERT_EQ(sbom.exit_code, 0) << sbom.err;
  const json bin = json::parse(Slurp(P("sbom.json")));
  bool libc = false;
  for (const json& c : bin["components"]) {
    if (c["name"] == "libc6") {
      libc = c["purl"].get<std::string>().rfind("pkg:deb/debian/libc6@", 0) == 0;
    }
  }
  EXPECT_TRUE(libc) << bin.dump(2);

  // A deliberately broken copy: a component type the schema does not allow.
  json broken = json::parse(Slurp(P("ml-bom.json")));
  broken["metadata"]["component"]["type"] = "ml-model";
  std::ofstream(P("broken.json")) << broken.dump();

  const std::string validate =
      "bash " + std::string(VIGIL_SOURCE_DIR) + "/scripts/cyclonedx-validate.sh ";
  const Ran good = Sh(validate + P("ml-bom.json") + " " + P("sbom.json"));
  ASSERT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("ml-bom.json: valid CycloneDX 1.5"), std::string::npos) << good.out;
  const Ran bad = Sh(validate + P("broken.json"));
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("broken.json: INVALID: /metadata/component/type"), std::string::npos)
      << bad.out;
}

}  // namespace
