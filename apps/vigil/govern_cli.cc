#include "apps/vigil/govern_cli.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/registry.h"
#include "govern/trust.h"

namespace vigil::app {

void StateOptions::AddTo(CLI::App* cmd) {
  cmd->add_option("--config", config, "Config whose state_dir holds the default locations")
      ->capture_default_str();
}

core::Result<std::string> StateOptions::Resolve(const std::string& given,
                                                std::string (*make)(const std::string&)) const {
  if (!given.empty()) return given;
  auto c = core::LoadConfig(config);
  if (!c.has_value()) return c.error();
  return make(c->state_dir);
}

int EmitJson(const std::string& command, const nlohmann::json& doc, const std::string& out,
             const std::string& note) {
  const std::string text = doc.dump(2) + "\n";
  if (out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  if (auto st = govern::internal::WriteFileAtomic(out, text, 0644); !st.ok()) {
    return ReportError(command, st);
  }
  std::fprintf(stderr, "vigil %s: wrote %s%s\n", command.c_str(), out.c_str(), note.c_str());
  return kExitOk;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

struct SignOptions {
  std::string file;
  std::string key_dir;
  std::string trusted_comment;
  StateOptions state;
  bool json = false;
};

struct VerifyOptions {
  std::string file;
  std::string key;
  std::string signature;
  std::string key_dir;
  StateOptions state;
  bool json = false;
};

std::string Sanitised(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return s;
}

int RunSign(const std::string& command, const SignOptions& o, const ArtifactCheck& check) {
  auto dir = o.state.Resolve(o.key_dir, govern::DefaultKeyDir);
  if (!dir.has_value()) return ReportError(command, dir.error());
  auto key = govern::LoadSecretKey(govern::SecretKeyPath(*dir));
  if (!key.has_value()) {
    return ReportError(command, key.error().code() == core::StatusCode::kNotFound
                                    ? key.error().WithContext("no signing key (run `vigil keys "
                                                              "init` or give --key-dir)")
                                    : key.error());
  }
  auto bytes = core::ReadFile(o.file, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return ReportError(command, bytes.error());
  if (auto st = check(*bytes, o.file); !st.ok()) return ReportError(command, st);
  const std::string digest = govern::internal::Sha256Hex(*bytes);
  auto sig = govern::SignArtifact(o.file, *bytes, *key, Sanitised(o.trusted_comment), NowUnix());
  if (!sig.has_value()) return ReportError(command, sig.error());
  const std::string sig_path = o.file + ".minisig";
  if (o.json) {
    nlohmann::json j = {{"file", o.file}, {"signature", sig_path},
                        {"key_id", govern::KeyIdHex(key->key_id)}, {"sha256", digest},
                        {"trusted_comment", sig->trusted_comment}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("signed %s with key %s -> %s\n", o.file.c_str(),
                govern::KeyIdHex(key->key_id).c_str(), sig_path.c_str());
  }
  return kExitOk;
}

int RunVerify(const std::string& command, const VerifyOptions& o, const ArtifactCheck& check) {
  std::string key_path = o.key;
  if (key_path.empty()) {
    auto dir = o.state.Resolve(o.key_dir, govern::DefaultKeyDir);
    if (!dir.has_value()) return ReportError(command, dir.error());
    key_path = govern::PublicKeyPath(*dir);
  }
  auto key = govern::LoadPublicKey(key_path);
  if (!key.has_value()) return ReportError(command, key.error());
  const std::string sig_path = o.signature.empty() ? o.file + ".minisig" : o.signature;
  auto sig = govern::LoadSignature(sig_path);
  if (!sig.has_value()) {
    return ReportError(command, sig.error().code() == core::StatusCode::kNotFound
                                    ? sig.error().WithContext(o.file + " is not signed")
                                    : sig.error());
  }
  auto bytes = core::ReadFile(o.file, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return ReportError(command, bytes.error());
  const govern::Verification v = govern::Verify(*key, *sig, *bytes);
  // A valid signature over bytes that are not a well-formed artifact is still refused.
  core::Status content = v.outcome == govern::VerifyOutcome::kValid ? check(*bytes, o.file)
                                                                    : core::Status::Ok();
  const bool valid = v.outcome == govern::VerifyOutcome::kValid && content.ok();
  static constexpr const char* kOutcomes[] = {"valid", "unknown-key", "bad-signature",
                                              "bad-trusted-comment"};
  if (o.json) {
    nlohmann::json j = {{"file", o.file},
                        {"signature", sig_path},
                        {"key", key_path},
                        {"key_id", govern::KeyIdHex(key->key_id)},
                        {"signer_key_id", govern::KeyIdHex(sig->key_id)},
                        {"algorithm", sig->algorithm == govern::SignatureAlgorithm::kPrehashed
                                          ? "ED"
                                          : "Ed"},
                        {"valid", valid},
                        {"outcome", content.ok() ? kOutcomes[static_cast<int>(v.outcome)]
                                                 : "bad-content"},
                        {"reason", content.ok() ? v.reason : content.message()},
                        {"trusted_comment", sig->trusted_comment},
                        {"sha256", govern::internal::Sha256Hex(*bytes)}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  if (!content.ok()) return ReportError(command, content);
  if (!valid) {
    std::fprintf(stderr, "vigil %s: FAILED: %s: %s\n", command.c_str(), o.file.c_str(),
                 v.reason.c_str());
    return kExitFailure;
  }
  if (!o.json) {
    std::printf("%s: signature valid (key %s)\n  trusted comment: %s\n", o.file.c_str(),
                govern::KeyIdHex(key->key_id).c_str(), sig->trusted_comment.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddSignVerifyCommands(CommandGroup& group, const std::string& kind, ArtifactCheck check) {
  auto s = std::make_shared<SignOptions>();
  const std::string sign_name = kind + " sign", verify_name = kind + " verify";
  CLI::App* sign = group.Add("sign", "Sign a " + kind + " file, writing FILE.minisig (minisign format)",
                             [s, check, sign_name] { return RunSign(sign_name, *s, check); });
  sign->add_option("FILE", s->file, "The " + kind + " file")->required();
  sign->add_option("--key-dir", s->key_dir,
                   "Folder holding vigil.key (default: <state_dir>/keys)");
  sign->add_option("--trusted-comment", s->trusted_comment,
                   "Text appended to the signed trusted comment");
  sign->add_flag("--json", s->json, "Print the result as JSON");
  s->state.AddTo(sign);

  auto v = std::make_shared<VerifyOptions>();
  CLI::App* verify = group.Add(
      "verify", "Check a " + kind + " file against its minisign signature",
      [v, check, verify_name] { return RunVerify(verify_name, *v, check); });
  verify->add_option("FILE", v->file, "The " + kind + " file")->required();
  verify->add_option("--key", v->key, "Public key file (default: <key-dir>/vigil.pub)");
  verify->add_option("--signature", v->signature, "Signature file (default: FILE.minisig)");
  verify->add_option("--key-dir", v->key_dir,
                     "Folder holding vigil.pub (default: <state_dir>/keys)");
  verify->add_flag("--json", v->json, "Print the result as JSON");
  verify->footer("Exit codes: 0 valid; 1 altered file, wrong or unknown key, altered trusted "
                 "comment; 2 malformed or missing key, signature or " + kind + " file.");
  v->state.AddTo(verify);
}

}  // namespace vigil::app
