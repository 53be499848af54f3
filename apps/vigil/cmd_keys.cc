// vigil keys init|show: the host's Ed25519 signing key pair, in minisign's formats.

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/govern_cli.h"
#include "govern/keys.h"

namespace vigil::app {
namespace {

struct KeysOptions {
  std::string dir;
  bool force = false;
  bool json = false;
  StateOptions state;
};

// The base64 line of a public key file: what `minisign -P` takes.
std::string PublicKeyLine(const govern::PublicKey& key) {
  const std::string text = govern::EncodePublicKey(key);
  const size_t start = text.find('\n') + 1;
  return text.substr(start, text.size() - start - 1);
}

int PrintKey(const std::string& dir, const govern::PublicKey& key, bool json, const char* verb) {
  const std::string id = govern::KeyIdHex(key.key_id);
  if (json) {
    nlohmann::json j = {{"key_id", id},
                        {"public_key", PublicKeyLine(key)},
                        {"public_key_file", govern::PublicKeyPath(dir)},
                        {"secret_key_file", govern::SecretKeyPath(dir)}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s key %s\n  public key: %s\n  public key file: %s\n  secret key file: %s\n",
                verb, id.c_str(), PublicKeyLine(key).c_str(), govern::PublicKeyPath(dir).c_str(),
                govern::SecretKeyPath(dir).c_str());
  }
  return kExitOk;
}

int RunInit(const KeysOptions& o) {
  auto dir = o.state.Resolve(o.dir, govern::DefaultKeyDir);
  if (!dir.has_value()) return ReportError("keys init", dir.error());
  auto pair = govern::InitKeys(*dir, o.force);
  if (!pair.has_value()) return ReportError("keys init", pair.error());
  return PrintKey(*dir, pair->public_key, o.json, "created");
}

int RunShow(const KeysOptions& o) {
  auto dir = o.state.Resolve(o.dir, govern::DefaultKeyDir);
  if (!dir.has_value()) return ReportError("keys show", dir.error());
  auto pub = govern::LoadPublicKey(govern::PublicKeyPath(*dir));
  if (!pub.has_value()) return ReportError("keys show", pub.error());
  // When the secret key is readable, it must be the public key's other half.
  auto sec = govern::LoadSecretKey(govern::SecretKeyPath(*dir));
  if (sec.has_value()) {
    const govern::PublicKey derived = govern::PublicKeyOf(*sec);
    if (derived.key_id != pub->key_id || derived.key != pub->key) {
      return ReportError("keys show",
                         core::InvalidArgument(govern::SecretKeyPath(*dir) + " and " +
                                               govern::PublicKeyPath(*dir) +
                                               " are not one key pair"));
    }
  } else if (sec.error().code() != core::StatusCode::kNotFound) {
    return ReportError("keys show", sec.error());
  }
  return PrintKey(*dir, *pub, o.json, "host");
}

}  // namespace

RunFn AddKeysCommand(CLI::App& root) {
  CommandGroup group(root, "keys", "Create and show the host's signing key pair (minisign format)");
  auto init = std::make_shared<KeysOptions>();
  CLI::App* i = group.Add("init", "Create the Ed25519 key pair: DIR/vigil.key (0600), DIR/vigil.pub",
                          [init] { return RunInit(*init); });
  i->add_option("--dir", init->dir, "Key folder (default: <state_dir>/keys)");
  i->add_flag("--force", init->force, "Replace an existing key pair");
  i->add_flag("--json", init->json, "Print the new key as JSON");
  init->state.AddTo(i);
  auto show = std::make_shared<KeysOptions>();
  CLI::App* s = group.Add("show", "Print the key id and public key",
                          [show] { return RunShow(*show); });
  s->add_option("--dir", show->dir, "Key folder (default: <state_dir>/keys)");
  s->add_flag("--json", show->json, "Print as JSON");
  show->state.AddTo(s);
  return group.Runner();
}

}  // namespace vigil::app
