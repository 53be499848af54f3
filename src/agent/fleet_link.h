#pragma once

// The agent's fleet link (docs/hub.md, "Fleet"): one thread that registers this host with the hub
// (group, mode, vigil version, the policy and model it runs), then heartbeats every period with
// its health figures. The hub's answer names the updates rolled out to the agent's group; the
// link downloads each artifact and its signature, checks them itself (the SHA-256 the hub named,
// then the minisign signature against the agent's own trusted keys: govern::CheckSignedBytes),
// installs a policy as the configured policy file (with its .minisig) and asks the agent to
// reload it. A model is first read as a model file (its header: model/model_file.h) and judged by
// the agent (`check_model`: is it the kind of model the configured model file holds?), then
// installed as the configured model file (with its .minisig) and reloaded the same way. A refused
// update (digest, signature, no policy or model file, not a model file, the wrong kind of model,
// a policy or model that does not load) is recorded through `audit`, the previous file stays in
// force (put back when the new one did not load), and the refusal goes to the hub in the next
// heartbeat. A hub that is down or slow only delays the link: the agent never waits on it.
//
// Thread-safety: Start/Stop from one thread; state() from any.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/hub_client.h"
#include "core/status.h"
#include "govern/credential.h"
#include "govern/minisign.h"
#include "hub/checkpoint_requests.h"
#include "model/model_file.h"

namespace vigil::agent {

// What the agent reports of itself at each heartbeat.
struct FleetHealth {
  std::string mode = "monitor";  // "monitor" or "enforce"
  std::string policy_version;    // the policy in force
  uint64_t events = 0;           // read since the start (the link turns it into a rate)
  uint64_t drops = 0;            // dropped since the start
  uint64_t alerts = 0;           // since the start
  // The model in force, reported as the heartbeat's "model" (null when both are ""): its name and
  // version ("NAME VERSION") and the SHA-256 (hex) of the file it was loaded from. An empty
  // digest is replaced by the digest of model_file as last installed by the link.
  std::string model_version;
  std::string model_digest;
};

struct FleetLinkOptions {
  HubLinkOptions link;
  std::string group = "default";
  std::chrono::milliseconds heartbeat{10000};
  std::string vigil_version;
  // A distributed policy replaces this file and its .minisig ("": policy updates are refused).
  std::string policy_file;
  std::vector<govern::PublicKey> trusted;  // the agent's own trusted keys
  std::string trust_error;                 // why `trusted` is empty (the refusal's reason)
  std::function<FleetHealth()> health;     // required
  // This host's network addresses, sent with every register and heartbeat as "addresses" (the
  // hub's chain correlation maps a finding's destination to the host that has it); called at each
  // report, so that a changed address reaches the hub. Empty: none sent (the hub then knows only
  // the address the request came from). agent::HostAddresses() is the agent's.
  std::function<std::vector<std::string>()> addresses;
  // The key that signs this host's audit checkpoints, sent with the registration ("audit_key"):
  // the hub verifies the checkpoints it receives by it (hub/checkpoints.h). None: not sent.
  std::optional<hub::AuditKeyReport> audit_key;
  // Reloads the policy from its files (the path SIGHUP takes); an error keeps the previous one.
  std::function<core::Status()> reload_policy;
  // A distributed model replaces this file and its .minisig ("": model updates are refused).
  std::string model_file;
  // Judges a verified model file before it is installed (the kind of model model_file must hold:
  // a family that loads, scores what the agent needs); an error is the refusal's reason. `source`
  // names the artifact ("sha256:HEX"). Unset: every model file that decodes is accepted.
  std::function<core::Status(const model::ModelFile& file, const std::string& source)> check_model;
  // Reloads the model from model_file (atomically: the model in force stays until the new one
  // has loaded; a gate that runs without a model starts serving it); an error keeps the previous
  // one, and the link puts the previous file back (or removes the new one when there was none).
  std::function<core::Status()> reload_model;
  // With it, registration carries a TPM quote over a nonce from the hub (GET /v1/agents/nonce):
  // returns the quote document (govern::EncodeQuoteDocument) over the nonce's bytes. A failure
  // registers without a quote (the hub records the attestation as absent).
  std::function<core::Result<std::string>(const std::string& nonce)> quote;
  // With it, a credential challenge in the hub's answer to the registration (its EK CA check,
  // docs/attestation.md "The hub") is activated by the TPM (TPM2_ActivateCredential) and the
  // secret returned to the hub (POST /v1/agents/activate); the hub's answer to that is then the
  // answer on enforce mode. The hub may also ask for a fresh quote in a heartbeat answer; the next
  // heartbeat carries it (through `quote`).
  std::function<core::Result<std::string>(const govern::CredentialChallenge&)> activate;
  // Called when the hub's answer on enforce mode changes (and on the first answer): whether the
  // hub allows it (its attestation requirement) and why.
  std::function<void(bool allowed, const std::string& reason)> on_enforce;
  // An update applied ("applied") or refused ("refused"): for the agent's audit log.
  std::function<void(const std::string& kind, const std::string& action,
                     const std::string& digest, const std::string& reason)>
      audit;
};

struct FleetState {
  bool registered = false;
  std::string policy_digest;  // SHA-256 of policy_file as installed ("" when none)
  std::string model_digest;   // SHA-256 of model_file as installed ("" when none)
  std::optional<std::string> refusal;  // the last refusal's reason, until an update applies
  uint64_t heartbeats = 0;             // answered by the hub
  std::string last_error;              // the last failure to reach the hub ("" after a success)
  std::optional<bool> enforce_allowed;  // the hub's last answer (none before the first)
  std::string enforce_reason;
  std::string attestation;  // the hub's view of this agent's attestation (its latest answer)
};

class FleetLink {
 public:
  // kInvalidArgument for bad link options (ValidateHubLink), a period outside 1 s .. 1 h (tests
  // may use down to 10 ms), or no health callback.
  static core::Result<std::unique_ptr<FleetLink>> Create(FleetLinkOptions options);
  ~FleetLink();
  FleetLink(const FleetLink&) = delete;
  FleetLink& operator=(const FleetLink&) = delete;

  void Start();
  void Stop();  // idempotent; waits for a request in flight (at most the link's timeout)

  // One round: register (when not yet registered) or heartbeat, then apply what the answer
  // names. The thread calls it every period; tests call it directly.
  core::Status Beat();

  FleetState state() const;

 private:
  explicit FleetLink(FleetLinkOptions options, std::unique_ptr<HubClient> client);
  nlohmann::json Report(bool heartbeat);
  void Apply(const nlohmann::json& update);
  // Installs verified bytes and their signature as `path` and calls `reload`; when that fails the
  // previous file and signature are put back (and, with `reload_back`, reloaded), or the new ones
  // removed when there were none. The error says why the update is refused.
  core::Status Install(const std::string& kind, const std::string& path, const std::string& content,
                       const std::string& signature, const std::function<core::Status()>& reload,
                       bool reload_back);
  void Refuse(const std::string& kind, const std::string& digest, const std::string& reason);
  // The quote document for a registration ("" when none could be made; logged).
  std::string QuoteForHub();
  // Activates the hub's credential challenge in `answer` (a registration answer) and returns the
  // hub's answer to the activation (null when there was no challenge or it could not be sent).
  nlohmann::json Activate(const nlohmann::json& answer);

  const FleetLinkOptions options_;
  std::unique_ptr<HubClient> client_;
  mutable std::mutex mu_;
  FleetState state_;
  nlohmann::json refusal_;          // the refusal reported in heartbeats (null when none)
  std::set<std::string> refused_;   // digests refused: not downloaded again
  std::string quote_nonce_;         // a nonce the hub handed out for the next heartbeat's quote
  uint64_t last_events_ = 0;
  std::chrono::steady_clock::time_point last_beat_{};
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vigil::agent
