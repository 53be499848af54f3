#include "agent/fleet_link.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/files.h"
#include "govern/attest.h"
#include "govern/registry.h"
#include "govern/trust.h"
#include "hub/fleet_requests.h"

namespace vigil::agent {
namespace {

using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Sha256(std::string_view bytes) { return govern::HexOf(govern::Sha256Of(bytes)); }

}  // namespace

core::Result<std::unique_ptr<FleetLink>> FleetLink::Create(FleetLinkOptions options) {
  if (options.heartbeat < std::chrono::milliseconds(10) ||
      options.heartbeat > std::chrono::hours(1)) {
    return core::InvalidArgument("hub heartbeat: expected a period from 1s to 1h");
  }
  if (!options.health) return core::InvalidArgument("fleet link: no health callback");
  if (!hub::ValidGroupName(options.group)) {
    return core::InvalidArgument("hub group: expected 1..64 characters of [A-Za-z0-9._-]");
  }
  options.link.keep_alive = false;  // a heartbeat every few seconds need not hold a hub thread
  VIGIL_ASSIGN_OR_RETURN(auto client, HubClient::Create(options.link));
  return std::unique_ptr<FleetLink>(new FleetLink(std::move(options), std::move(client)));
}

FleetLink::FleetLink(FleetLinkOptions options, std::unique_ptr<HubClient> client)
    : options_(std::move(options)), client_(std::move(client)) {
  if (!options_.policy_file.empty()) {
    auto bytes = core::ReadFile(options_.policy_file, govern::kMaxArtifactBytes);
    if (bytes.has_value()) state_.policy_digest = Sha256(*bytes);
  }
  if (!options_.model_file.empty()) {
    auto bytes = core::ReadFile(options_.model_file, model::kMaxModelFileBytes);
    if (bytes.has_value()) state_.model_digest = Sha256(*bytes);
  }
}

FleetLink::~FleetLink() { Stop(); }

void FleetLink::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (core::Status st = Beat(); !st.ok()) {
        spdlog::debug("hub fleet link: {}", st.message());
      }
      lock.lock();
      cv_.wait_for(lock, options_.heartbeat, [this] { return stop_; });
    }
  });
}

void FleetLink::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

FleetState FleetLink::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

json FleetLink::Report(bool heartbeat) {
  const FleetHealth h = options_.health();
  std::lock_guard lock(mu_);
  json j = {{"host", options_.link.host},
            {"mode", h.mode == "enforce" ? "enforce" : "monitor"},
            {"policy", {{"version", h.policy_version.substr(0, 128)},
                        {"digest", state_.policy_digest}}},
            {"model", nullptr}};
  const std::string& model_digest = h.model_digest.empty() ? state_.model_digest : h.model_digest;
  if (!h.model_version.empty() || !model_digest.empty()) {
    j["model"] = {{"version", h.model_version.substr(0, 128)}, {"digest", model_digest}};
  }
  if (options_.addresses) j["addresses"] = options_.addresses();
  const auto now = std::chrono::steady_clock::now();
  if (heartbeat) {
    const double seconds =
        last_beat_.time_since_epoch().count() == 0
            ? 0
            : std::chrono::duration<double>(now - last_beat_).count();
    const uint64_t delta = h.events >= last_events_ ? h.events - last_events_ : 0;
    j["health"] = {{"events_per_s", seconds > 0 ? delta / seconds : 0.0},
                   {"drops", h.drops},
                   {"alerts", h.alerts}};
    j["refusal"] = refusal_;
  } else {
    j["group"] = options_.group;
    j["vigil_version"] = options_.vigil_version;
    if (options_.audit_key) {
      j["audit_key"] = {{"key_id", options_.audit_key->key_id},
                        {"public_key", options_.audit_key->public_key}};
    }
  }
  last_events_ = h.events;
  last_beat_ = now;
  return j;
}

std::string FleetLink::QuoteForHub() {
  if (!options_.quote) return "";
  auto reply = client_->Get("/v1/agents/nonce");
  if (!reply.has_value() || reply->status != 200 || !reply->body.is_object() ||
      !reply->body.contains("nonce") || !reply->body["nonce"].is_string()) {
    spdlog::warn("hub: no attestation nonce ({}); registering without a quote",
                 reply.has_value() ? reply->error : reply.error().message());
    return "";
  }
  auto nonce = govern::BytesOfHex(reply->body["nonce"].get<std::string>());
  if (!nonce || nonce->empty() || nonce->size() > 64) {
    spdlog::warn("hub: the attestation nonce is not hex; registering without a quote");
    return "";
  }
  auto quote = options_.quote(*nonce);
  if (!quote.has_value()) {
    spdlog::warn("hub: quoting for the hub failed ({}); registering without a quote",
                 quote.error().message());
    return "";
  }
  return *quote;
}

json FleetLink::Activate(const json& answer) {
  const json* a = answer.contains("attestation") ? &answer["attestation"] : nullptr;
  if (!options_.activate || a == nullptr || !a->is_object() || !a->contains("challenge")) {
    return nullptr;
  }
  const json& c = (*a)["challenge"];
  auto text = [&c](const char* key) {
    return c.contains(key) && c[key].is_string() ? c[key].get<std::string>() : std::string();
  };
  if (!c.is_object() || text("token").empty()) {
    spdlog::warn("hub: ignored a malformed credential challenge");
    return nullptr;
  }
  auto challenge = govern::ParseCredentialChallenge(
      text("credential_blob"), text("encrypted_secret"), "the hub's credential challenge");
  if (!challenge.has_value()) {
    spdlog::warn("hub: {}", challenge.error().message());
    return nullptr;
  }
  auto secret = options_.activate(*challenge);
  if (!secret.has_value()) {
    spdlog::error("hub: the TPM did not activate the hub's credential: {}",
                  secret.error().message());
    return nullptr;  // the hub keeps this host "challenged": enforce mode stays refused
  }
  const json body = {{"host", options_.link.host},
                     {"token", c["token"]},
                     {"secret", govern::HexOf(*secret)}};
  auto reply = client_->Post("/v1/agents/activate", body.dump());
  if (!reply.has_value() || !reply->body.is_object()) {
    spdlog::warn("hub: activating the credential: {}",
                 reply.has_value() ? reply->error : reply.error().message());
    return nullptr;
  }
  return reply->body;
}

core::Status FleetLink::Beat() {
  const bool registered = state().registered;
  json body = Report(registered);
  if (!registered) {
    if (std::string quote = QuoteForHub(); !quote.empty()) body["attestation"] = std::move(quote);
  } else if (std::string nonce = std::exchange(quote_nonce_, ""); !nonce.empty() && options_.quote) {
    auto quote = options_.quote(govern::BytesOfHex(nonce).value_or(""));
    if (quote.has_value()) {
      body["attestation"] = std::move(quote).value();
    } else {
      spdlog::warn("hub: quoting for the hub failed: {}", quote.error().message());
    }
  }
  auto reply = client_->Post(registered ? "/v1/agents/heartbeat" : "/v1/agents/register",
                             body.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!reply.has_value()) {
    std::lock_guard lock(mu_);
    state_.last_error = reply.error().message();
    return reply.error();
  }
  if (reply->status == 404 && registered) {
    // The hub no longer knows this host (a new store): register again at the next beat.
    std::lock_guard lock(mu_);
    state_.registered = false;
    state_.last_error = reply->error;
    return core::Unavailable("hub: " + reply->error);
  }
  if (reply->status != 200 || !reply->body.is_object()) {
    std::lock_guard lock(mu_);
    state_.last_error = "hub answered " + std::to_string(reply->status) + ": " + reply->error;
    return core::Unavailable(state_.last_error);
  }
  {
    std::lock_guard lock(mu_);
    if (!registered) {
      state_.registered = true;
      spdlog::info("hub: registered as {} in group {}", options_.link.host, options_.group);
    } else {
      ++state_.heartbeats;
    }
    state_.last_error.clear();
  }
  json answer = std::move(reply->body);
  if (!registered) {
    if (json activated = Activate(answer); activated.is_object()) {
      for (const char* key : {"enforce", "attestation"}) {
        if (activated.contains(key)) answer[key] = activated[key];
      }
    }
  }
  const json& attestation = answer.contains("attestation") ? answer["attestation"] : json();
  if (attestation.is_object() && attestation.contains("quote_nonce") &&
      attestation["quote_nonce"].is_string()) {
    quote_nonce_ = attestation["quote_nonce"].get<std::string>();
  }
  const json& enforce = answer.contains("enforce") ? answer["enforce"] : json();
  if (enforce.is_object() && enforce.contains("allowed") && enforce["allowed"].is_boolean()) {
    const bool allowed = enforce["allowed"].get<bool>();
    const std::string reason = enforce.value("reason", std::string());
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      changed = state_.enforce_allowed != allowed;
      state_.enforce_allowed = allowed;
      state_.enforce_reason = reason;
      if (attestation.is_object() && attestation.contains("state") &&
          attestation["state"].is_string()) {
        state_.attestation = attestation["state"].get<std::string>();
      }
    }
    if (changed && options_.on_enforce) options_.on_enforce(allowed, reason);
  }
  const json& updates = answer.contains("updates") ? answer["updates"] : json();
  if (updates.is_array()) {
    for (const json& u : updates) Apply(u);
  }
  return {};
}

void FleetLink::Refuse(const std::string& kind, const std::string& digest,
                       const std::string& reason) {
  spdlog::error("hub: {} update sha256:{} refused: {}", kind, digest, reason);
  {
    std::lock_guard lock(mu_);
    refused_.insert(digest);
    refusal_ = {{"kind", kind}, {"digest", digest}, {"reason", reason.substr(0, 1024)},
                {"time_ms", NowMs()}};
    state_.refusal = reason;
  }
  if (options_.audit) options_.audit(kind, "refused", digest, reason);
}

core::Status FleetLink::Install(const std::string& kind, const std::string& path,
                                const std::string& content, const std::string& signature,
                                const std::function<core::Status()>& reload, bool reload_back) {
  // The previous file and signature, to put back if the new one does not load.
  auto old_bytes = core::ReadFile(path, model::kMaxModelFileBytes);
  auto old_sig = core::ReadFile(path + ".minisig", govern::kMaxArtifactBytes);
  if (core::Status st = govern::WriteSignedArtifact(path, content, signature); !st.ok()) {
    return core::Unavailable("installing it: " + st.message());
  }
  core::Status loaded = reload ? reload() : core::Status::Ok();
  if (loaded.ok()) return loaded;
  if (old_bytes.has_value()) {
    core::Status back =
        govern::WriteSignedArtifact(path, *old_bytes, old_sig.has_value() ? *old_sig : "");
    if (back.ok() && reload_back && reload) back = reload();
    if (!back.ok()) spdlog::error("hub: restoring the previous {}: {}", kind, back.message());
  } else {
    // There was none (a gate that waits for its first model): none stays, so that the next start
    // does not trip on a file that did not load.
    std::error_code ec;
    std::filesystem::remove(path, ec);
    std::filesystem::remove(path + ".minisig", ec);
    if (ec) spdlog::error("hub: removing the {} that did not load: {}", kind, ec.message());
  }
  return core::InvalidArgument("the " + kind + " does not load: " + loaded.message());
}

void FleetLink::Apply(const json& u) {
  if (!u.is_object() || !u.contains("kind") || !u["kind"].is_string() || !u.contains("digest") ||
      !u["digest"].is_string()) {
    spdlog::warn("hub: ignored a malformed update in the heartbeat answer");
    return;
  }
  const std::string kind = u["kind"].get<std::string>();
  std::string digest;
  if (!hub::ValidArtifactKind(kind) || !hub::ParseDigest(u["digest"].get<std::string>(), &digest)) {
    spdlog::warn("hub: ignored an update with a bad kind or digest");
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (refused_.count(digest) != 0) return;  // refused once: not fetched again
  }
  const bool is_model = kind == "model";
  const std::string& path = is_model ? options_.model_file : options_.policy_file;
  if (path.empty()) {
    return Refuse(kind, digest,
                  is_model ? "no model_file is configured in the agent's hub sink"
                           : "no policy_file is configured in the agent's hub sink");
  }
  // Transport failures are retried at the next beat; what arrives is judged here.
  auto bytes = client_->Get("/v1/artifacts/" + digest);
  auto sig = client_->Get("/v1/artifacts/" + digest + "/signature");
  if (!bytes.has_value() || !sig.has_value()) {
    spdlog::warn("hub: downloading {} sha256:{}: {}", kind, digest,
                 (!bytes.has_value() ? bytes.error() : sig.error()).message());
    return;
  }
  if (bytes->status != 200 || sig->status != 200) {
    spdlog::warn("hub: downloading {} sha256:{}: {}", kind, digest,
                 bytes->status != 200 ? bytes->error : sig->error);
    return;
  }
  const std::string& content = bytes->raw;
  const std::string& signature = sig->raw;
  if (Sha256(content) != digest) {
    return Refuse(kind, digest,
                  "the downloaded bytes have SHA-256 " + Sha256(content) +
                      ", not the digest the hub named");
  }
  auto parsed = govern::ParseSignature(signature, "sha256:" + digest + ".minisig");
  if (!parsed.has_value()) return Refuse(kind, digest, parsed.error().message());
  if (options_.trusted.empty()) {
    return Refuse(kind, digest,
                  "no trusted keys to check it with" +
                      (options_.trust_error.empty() ? "" : ": " + options_.trust_error));
  }
  const govern::TrustCheck t =
      govern::CheckSignedBytes(kind + " sha256:" + digest, content, *parsed, options_.trusted);
  if (!t.trusted) return Refuse(kind, digest, t.outcome + ": " + t.reason);

  std::string what = "signed by key " + t.key_id;
  core::Status installed;
  if (is_model) {
    // What it is, from its header, before anything is written.
    const std::string source = "sha256:" + digest;
    auto file = model::DecodeModelFile(content, source);
    if (!file.has_value()) {
      return Refuse(kind, digest, "not a model file: " + file.error().message());
    }
    if (options_.check_model) {
      if (core::Status st = options_.check_model(*file, source); !st.ok()) {
        return Refuse(kind, digest, st.message());
      }
    }
    what = model::HeaderString(*file, "family") + " model " + model::HeaderString(*file, "name") +
           " " + model::HeaderString(*file, "version") + ", " + what;
    installed = Install(kind, path, content, signature, options_.reload_model, false);
  } else {
    installed = Install(kind, path, content, signature, options_.reload_policy, true);
  }
  if (!installed.ok()) return Refuse(kind, digest, installed.message());
  {
    std::lock_guard lock(mu_);
    (is_model ? state_.model_digest : state_.policy_digest) = digest;
    state_.refusal.reset();
    refusal_ = nullptr;
  }
  spdlog::info("hub: {} sha256:{} applied ({})", kind, digest, what);
  if (options_.audit) options_.audit(kind, "applied", digest, what);
}

}  // namespace vigil::agent
