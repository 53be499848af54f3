// `vigil hub push`, `vigil hub rollout start|promote|list`, `vigil hub cert list|revoke` and
// `vigil hub audit-key pin`: the admin's side of signed distribution and of the agents'
// credentials (docs/hub.md, "Fleet"). Thin clients of the hub's REST API.

#include <httplib.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/vigil/commands.h"
#include "core/files.h"
#include "govern/attest.h"
#include "govern/keys.h"
#include "hub/checkpoint_requests.h"
#include "hub/enrolment.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"

namespace vigil::app {
namespace {

struct FleetFlags {
  std::string server;
  std::string token_file;
  std::string ca;
  int timeout_ms = 10000;
  bool json = false;
  // push
  std::string file, sig, kind;
  // rollout
  std::string digest, group;
  int64_t id = 0;
  // cert, audit-key
  std::string cert_sha256, host, reason;
  std::string fingerprint, public_key;
};

core::Result<std::unique_ptr<httplib::Client>> Connect(const FleetFlags& f) {
  std::unique_ptr<httplib::Client> c;
  try {
    c = std::make_unique<httplib::Client>(f.server);
  } catch (const std::exception& e) {
    return core::InvalidArgument("--server \"" + f.server + "\": " + e.what());
  }
  if (!c->is_valid()) return core::InvalidArgument("--server \"" + f.server + "\": not a URL");
  if (!f.ca.empty()) c->set_ca_cert_path(f.ca.c_str());
  c->set_connection_timeout(0, f.timeout_ms * 1000);
  c->set_read_timeout(0, f.timeout_ms * 1000);
  c->set_write_timeout(0, f.timeout_ms * 1000);
  return c;
}

// Prints the answer (JSON with --json, else `human` of it); exit 0, 1 (hub or transport) or 2
// (the hub refused the request as bad: 400, 404, 409, 412, 422).
int Finish(const char* what, const FleetFlags& f, const httplib::Result& res,
           const std::function<void(const nlohmann::json&)>& human) {
  if (!res) {
    return ReportError(what, core::Unavailable(f.server + ": " + httplib::to_string(res.error())));
  }
  const auto answer = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status < 200 || res->status > 299 || !answer.is_object()) {
    std::string message = res->body.substr(0, 512);
    if (answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
      message = answer["error"].value("code", "") + ": " + answer["error"].value("message", "");
    }
    std::fprintf(stderr, "vigil %s: error: HTTP %d: %s\n", what, res->status, message.c_str());
    const int s = res->status;
    return s == 400 || s == 404 || s == 409 || s == 412 || s == 422 ? kExitUsage : kExitFailure;
  }
  if (f.json) {
    std::printf("%s\n", answer.dump().c_str());
  } else {
    human(answer);
  }
  return kExitOk;
}

core::Result<httplib::Headers> Auth(const FleetFlags& f) {
  VIGIL_ASSIGN_OR_RETURN(const std::string token, core::ReadTokenFile(f.token_file, "hub token"));
  return httplib::Headers{{"Authorization", "Bearer " + token}};
}

std::string RolloutLine(const nlohmann::json& r) {
  return std::to_string(r.value("id", int64_t{0})) + "  " + r.value("kind", "") + "  sha256:" +
         r.value("digest", "") + "  " + r.value("state", "") + "  canary group " +
         r.value("group", "");
}

int RunPush(const FleetFlags& f) {
  const char* what = "hub push";
  auto bytes = core::ReadFile(f.file, hub::kMaxRequestBytes - (64 << 10));  // what the hub takes
  if (!bytes.has_value()) return ReportError(what, bytes.error());
  const std::string sig_path = f.sig.empty() ? f.file + ".minisig" : f.sig;
  auto sig = core::ReadFile(sig_path, 64 << 10);
  if (!sig.has_value()) return ReportError(what, sig.error().WithContext("--sig"));
  auto headers = Auth(f);
  if (!headers.has_value()) return ReportError(what, headers.error());
  auto client = Connect(f);
  if (!client.has_value()) return ReportError(what, client.error());
  std::string name = f.file.substr(f.file.find_last_of('/') + 1);
  const httplib::MultipartFormDataItems items = {
      {"kind", f.kind, "", "text/plain"},
      {"file", *bytes, name, "application/octet-stream"},
      {"signature", *sig, name + ".minisig", "text/plain"}};
  return Finish(what, f, (*client)->Post("/v1/artifacts", *headers, items),
                [](const nlohmann::json& a) {
                  const auto& art = a["artifact"];
                  std::printf("%s sha256:%s (%s, %lld bytes, key %s)%s\n",
                              art.value("kind", "").c_str(), art.value("digest", "").c_str(),
                              art.value("name", "").c_str(),
                              static_cast<long long>(art.value("size", int64_t{0})),
                              art.value("key_id", "").c_str(),
                              art.value("created", false) ? "" : " (already stored)");
                });
}

int RunRollout(const FleetFlags& f, const std::string& action) {
  const std::string what = "hub rollout " + action;
  auto headers = Auth(f);
  if (!headers.has_value()) return ReportError(what, headers.error());
  auto client = Connect(f);
  if (!client.has_value()) return ReportError(what, client.error());
  if (action == "list") {
    return Finish(what.c_str(), f, (*client)->Get("/v1/rollouts", *headers),
                  [](const nlohmann::json& a) {
                    for (const auto& r : a["rollouts"]) std::printf("%s\n", RolloutLine(r).c_str());
                  });
  }
  std::string path = "/v1/rollouts/" + std::to_string(f.id) + "/promote", body = "{}";
  if (action == "start") {
    std::string digest;
    if (!hub::ParseDigest(f.digest, &digest)) {
      return ReportError(what, core::InvalidArgument("--digest: expected 64 lowercase hex "
                                                     "digits (SHA-256), optionally sha256:"));
    }
    if (!hub::ValidGroupName(f.group)) {
      return ReportError(what,
                         core::InvalidArgument("--group: expected 1..64 of [A-Za-z0-9._-]"));
    }
    path = "/v1/rollouts";
    body = nlohmann::json{{"digest", digest}, {"group", f.group}}.dump();
  }
  const httplib::Result res = (*client)->Post(path, *headers, body, "application/json");
  return Finish(what.c_str(), f, res, [](const nlohmann::json& a) {
    std::printf("%s\n", RolloutLine(a["rollout"]).c_str());
  });
}

std::string CertLine(const nlohmann::json& c) {
  std::string line = "sha256:" + c.value("sha256", "") + "  " + c.value("host", "") + "  " +
                     c.value("how", "") + "  until " +
                     std::to_string(c.value("not_after_s", int64_t{0}));
  if (c.value("revoked", false)) {
    line += "  REVOKED by " + c.value("revoked_by", "") + ": " + c.value("revoke_reason", "");
  }
  return line;
}

int RunCert(const FleetFlags& f, const std::string& action) {
  const std::string what = "hub cert " + action;
  std::string body;
  if (action == "revoke") {
    std::string sha256;
    if (f.cert_sha256.empty() == f.host.empty()) {
      return ReportError(what, core::InvalidArgument("give one of --sha256 and --host"));
    }
    if (!f.cert_sha256.empty() && !hub::ParseCertFingerprint(f.cert_sha256, &sha256)) {
      return ReportError(what, core::InvalidArgument(
                                   "--sha256: expected 64 hex digits (colons allowed), got \"" +
                                   f.cert_sha256.substr(0, 100) + "\""));
    }
    if (!f.host.empty() && !hub::ValidHostId(f.host)) {
      return ReportError(what, core::InvalidArgument(
                                   "--host: expected 1..253 bytes of [A-Za-z0-9._:-]"));
    }
    body = (sha256.empty() ? nlohmann::json{{"host", f.host}, {"reason", f.reason}}
                           : nlohmann::json{{"sha256", sha256}, {"reason", f.reason}})
               .dump();
  }
  auto headers = Auth(f);
  if (!headers.has_value()) return ReportError(what, headers.error());
  auto client = Connect(f);
  if (!client.has_value()) return ReportError(what, client.error());
  if (action == "list") {
    const std::string path =
        f.host.empty() ? "/v1/agents/certs" : "/v1/agents/certs?host=" + f.host;
    return Finish(what.c_str(), f, (*client)->Get(path, *headers), [](const nlohmann::json& a) {
      for (const auto& c : a["certs"]) std::printf("%s\n", CertLine(c).c_str());
    });
  }
  return Finish(what.c_str(), f,
                (*client)->Post("/v1/agents/certs/revoke", *headers, body, "application/json"),
                [](const nlohmann::json& a) {
                  for (const auto& c : a["revoked"]) std::printf("%s\n", CertLine(c).c_str());
                });
}

int RunAuditKeyPin(const FleetFlags& f) {
  const char* what = "hub audit-key pin";
  if (!hub::ValidHostId(f.host)) {
    return ReportError(what,
                       core::InvalidArgument("--host: expected 1..253 bytes of [A-Za-z0-9._:-]"));
  }
  if (f.fingerprint.empty() == f.public_key.empty()) {
    return ReportError(what, core::InvalidArgument("give one of --fingerprint and --public-key"));
  }
  hub::AuditKeyPinRequest pin{f.host, f.fingerprint, f.reason};
  if (!f.public_key.empty()) {
    auto key = govern::LoadPublicKey(f.public_key);
    if (!key.has_value()) return ReportError(what, key.error().WithContext("--public-key"));
    pin.fingerprint = hub::AuditKeyFingerprint(govern::HexOf(key->key));
  }
  // The hub's own parser checks what is sent (a bad fingerprint or reason is bad usage here).
  const std::string body = hub::AuditKeyPinBody(pin);
  if (auto checked = hub::ParseAuditKeyPinRequest(body); !checked.has_value()) {
    return ReportError(what, checked.error().WithContext("--fingerprint/--reason"));
  }
  auto headers = Auth(f);
  if (!headers.has_value()) return ReportError(what, headers.error());
  auto client = Connect(f);
  if (!client.has_value()) return ReportError(what, client.error());
  return Finish(what, f,
                (*client)->Post("/v1/agents/audit-key/pin", *headers, body, "application/json"),
                [](const nlohmann::json& a) {
                  std::printf("host %s: audit key pinned to fingerprint %s%s\n",
                              a.value("host", "").c_str(), a.value("fingerprint", "").c_str(),
                              a.value("previous_fingerprint", "").empty()
                                  ? ""
                                  : (" (was " + a.value("previous_fingerprint", "") + ")").c_str());
                  const nlohmann::json& k = a["registered_key"];
                  if (!k.is_object()) {
                    std::printf("the host registered no key yet\n");
                  } else if (k.value("pinned", false)) {
                    std::printf("the key it registered (%s) is the pinned one\n",
                                k.value("key_id", "").c_str());
                  } else {
                    std::printf("WARNING: the key it registered (%s, fingerprint %s) is not the "
                                "pinned one: its checkpoints no longer verify\n",
                                k.value("key_id", "").c_str(), k.value("fingerprint", "").c_str());
                  }
                });
}

void AddClientFlags(CLI::App* cmd, FleetFlags* f) {
  cmd->add_option("--server", f->server, "The hub's base URL (http[s]://host:port)")->required();
  cmd->add_option("--token-file", f->token_file, "File whose first line is an admin token")
      ->required();
  cmd->add_option("--ca", f->ca, "PEM CA bundle the hub's certificate must chain to");
  cmd->add_option("--timeout-ms", f->timeout_ms, "Connect and read timeout")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print the hub's answer as JSON");
}

}  // namespace

std::function<int()> AddHubFleetCommands(CLI::App* hub) {
  auto f = std::make_shared<FleetFlags>();
  CLI::App* push = hub->add_subcommand(
      "push",
      "Upload a signed policy or model to a hub (admin token); the hub checks the minisign "
      "signature against its fleet.trusted_keys and stores it under its SHA-256");
  push->add_option("file", f->file, "The policy or model file")->required();
  push->add_option("--sig", f->sig, "Its minisign signature (default FILE.minisig)");
  push->add_option("--kind", f->kind, "policy or model")
      ->required()
      ->check(CLI::IsMember({"policy", "model"}));
  AddClientFlags(push, f.get());
  push->footer("Then roll it out: vigil hub rollout start --digest sha256:HEX --group canary "
               "...\nExit codes: 0 stored, 1 hub or network failure, 2 refused (bad input, "
               "untrusted signature).");

  CLI::App* rollout = hub->add_subcommand(
      "rollout",
      "Distribute an uploaded artifact: to one group first (start), then to every agent "
      "(promote); agents verify the signature with their own keys before applying it");
  rollout->require_subcommand(1, 1);
  CLI::App* start = rollout->add_subcommand("start", "Roll an artifact out to one group");
  start->add_option("--digest", f->digest, "The artifact's SHA-256 (as push printed it)")
      ->required();
  start->add_option("--group", f->group, "The canary group (an agent's hub sink `group`)")
      ->required();
  AddClientFlags(start, f.get());
  CLI::App* promote = rollout->add_subcommand("promote", "Roll a started rollout out to all");
  promote->add_option("id", f->id, "The rollout's id")->required()->check(CLI::PositiveNumber);
  AddClientFlags(promote, f.get());
  CLI::App* list = rollout->add_subcommand("list", "List rollouts, newest first");
  AddClientFlags(list, f.get());
  for (CLI::App* c : {rollout, start, promote, list}) {
    c->footer("An agent runs, per kind, the newest rollout that is promoted or was started for "
              "its group.\nExit codes: 0 done, 1 hub or network failure, 2 refused (bad input, "
              "unknown digest or rollout, already promoted).");
  }

  CLI::App* cert = hub->add_subcommand(
      "cert",
      "Agents' client certificates (issued at enrolment and renewal): list them, or revoke one "
      "(by fingerprint) or every one of a host; a revoked certificate is refused at once by "
      "every hub instance that shares the store");
  cert->require_subcommand(1, 1);
  CLI::App* cert_list = cert->add_subcommand("list", "List certificates on record, newest first");
  cert_list->add_option("--host", f->host, "Only this host's");
  AddClientFlags(cert_list, f.get());
  CLI::App* revoke = cert->add_subcommand("revoke", "Revoke a certificate or a host's");
  revoke->add_option("--sha256", f->cert_sha256,
                     "The certificate's SHA-256 fingerprint (hub cert list; openssl x509 "
                     "-fingerprint -sha256)");
  revoke->add_option("--host", f->host, "Instead: every unrevoked certificate of this host");
  revoke->add_option("--reason", f->reason, "Why (recorded in the audit log)")->required();
  AddClientFlags(revoke, f.get());
  for (CLI::App* c : {cert_list, revoke}) {
    c->footer("Admin token. Exit codes: 0 done, 1 hub or network failure, 2 refused (bad "
              "input, a host with no certificate on record).");
  }

  CLI::App* audit_key = hub->add_subcommand(
      "audit-key",
      "Agents' audit keys (the keys that sign their audit logs' checkpoints): pin a host's key "
      "by fingerprint, so that the hub registers no other key for it and verifies its "
      "checkpoints only by that one (without a pin, the first key a host registers is trusted)");
  audit_key->require_subcommand(1, 1);
  CLI::App* pin = audit_key->add_subcommand(
      "pin", "Pin (or re-pin) a host's audit key; a different key the host offers is then "
             "refused and alarmed (log, metric, audit record)");
  pin->add_option("--host", f->host, "The host")->required();
  pin->add_option("--fingerprint", f->fingerprint,
                  "The key's fingerprint: the SHA-256 of its 32-byte public key, 64 hex digits "
                  "(GET /v1/agents/HOST/checkpoints shows the registered key's)");
  pin->add_option("--public-key", f->public_key,
                  "Instead: the host's public key file (minisign format: "
                  "<state_dir>/keys/vigil.pub on the host, obtained out of band)");
  pin->add_option("--reason", f->reason, "Why (recorded in the hub's audit log)");
  AddClientFlags(pin, f.get());
  pin->footer("Admin token. Exit codes: 0 pinned, 1 hub or network failure, 2 refused (bad "
              "input).");

  return [f, push, start, promote, list, cert_list, revoke, pin]() -> int {
    if (pin->parsed()) return RunAuditKeyPin(*f);
    if (cert_list->parsed()) return RunCert(*f, "list");
    if (revoke->parsed()) return RunCert(*f, "revoke");
    if (push->parsed()) return RunPush(*f);
    if (start->parsed()) return RunRollout(*f, "start");
    if (promote->parsed()) return RunRollout(*f, "promote");
    if (list->parsed()) return RunRollout(*f, "list");
    return -1;  // not one of these
  };
}

}  // namespace vigil::app
