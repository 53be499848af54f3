#include "agent/hub_escalations.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace vigil::agent {
namespace {

using nlohmann::json;

// The hub's limits on an escalation's texts (hub/requests.cc).
constexpr size_t kHubMaxRule = 256;
constexpr size_t kHubMaxReason = 4096;
constexpr int64_t kHubMaxTimeoutS = 86400;

std::string HubEscalationId(const enforce::Escalation& e) {
  return std::to_string(e.id) + "@" + std::to_string(e.created_ns);
}

std::string StringField(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

HubEscalations::HubEscalations(enforce::Enforcer& enforcer, HubEscalationOptions options,
                               const core::Clock& clock)
    : enforcer_(enforcer), options_(std::move(options)), clock_(clock) {}

core::Result<std::unique_ptr<HubEscalations>> HubEscalations::Create(enforce::Enforcer& enforcer,
                                                                     HubEscalationOptions options,
                                                                     const core::Clock& clock,
                                                                     core::Registry& registry) {
  if (options.poll_interval.count() < 1) {
    return core::InvalidArgument("hub escalations: poll_interval must be >= 1 ms");
  }
  std::unique_ptr<HubEscalations> h(new HubEscalations(enforcer, std::move(options), clock));
  VIGIL_ASSIGN_OR_RETURN(h->client_, HubClient::Create(h->options_.link));
  const char* kHelp = "Escalations handed to the hub, by how they ended";
  for (auto [result, out] :
       {std::pair{"forwarded", &h->forwarded_}, std::pair{"approved", &h->approved_},
        std::pair{"denied", &h->denied_}, std::pair{"timed_out", &h->timed_out_},
        std::pair{"default_unreachable", &h->default_unreachable_},
        std::pair{"decided_locally", &h->decided_locally_}}) {
    auto c = registry.GetCounter("vigil_hub_escalations_total", kHelp, {{"result", result}});
    if (!c.has_value()) return c.error();
    *out = *c;
  }
  auto e = registry.GetCounter("vigil_hub_escalation_errors_total",
                               "Exchanges with the hub about escalations that failed");
  if (!e.has_value()) return e.error();
  h->errors_ = *e;
  return h;
}

HubEscalations::~HubEscalations() { Stop(); }

void HubEscalations::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (worker_.joinable() || stop_) return;
  worker_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      l.unlock();
      PollOnce();
      l.lock();
      cv_.wait_for(l, options_.poll_interval, [this] { return stop_; });
    }
  });
}

void HubEscalations::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

HubEscalationCounts HubEscalations::Counts() const {
  HubEscalationCounts c;
  c.forwarded = forwarded_->Value();
  c.approved = approved_->Value();
  c.denied = denied_->Value();
  c.timed_out = timed_out_->Value();
  c.default_unreachable = default_unreachable_->Value();
  c.decided_locally = decided_locally_->Value();
  c.errors = errors_->Value();
  return c;
}

void HubEscalations::Error(const std::string& what) {
  errors_->Inc();
  if (!failing_) {
    spdlog::warn("hub escalations: {}; pending escalations keep their local deadline and default",
                 what);
  }
  failing_ = true;
}

void HubEscalations::PollOnce() {
  // Escalations() applies due local deadlines first: that is the default when nobody answered.
  auto pending = enforcer_.Escalations(/*pending_only=*/true);
  if (!pending.has_value()) {
    spdlog::warn("hub escalations: reading the ledger: {}", pending.error().message());
    return;
  }
  std::map<uint64_t, Tracked> gone;
  gone.swap(tracked_);
  for (const enforce::Escalation& e : *pending) {
    Tracked t;
    if (auto it = gone.find(e.id); it != gone.end()) {
      t = it->second;
      gone.erase(it);
    }
    const bool known = t.hub_id != 0 ? Refresh(&t) : Forward(e, &t);
    if (known && t.state != "pending" && !t.state.empty() && Answer(e, t)) continue;
    tracked_[e.id] = t;
  }
  if (!gone.empty()) Vanished(gone);
}

bool HubEscalations::ReadState(const json& reply, Tracked* t) {
  const json* esc =
      reply.is_object() && reply.contains("escalation") ? &reply["escalation"] : nullptr;
  if (esc == nullptr || !esc->is_object() || !esc->contains("id") ||
      !(*esc)["id"].is_number_integer()) {
    Error("the hub's answer has no escalation");
    return false;
  }
  t->hub_id = (*esc)["id"].get<int64_t>();
  t->state = StringField(*esc, "state");
  t->outcome = StringField(*esc, "outcome");
  t->decided_by = StringField(*esc, "decided_by");
  return true;
}

bool HubEscalations::Forward(const enforce::Escalation& e, Tracked* t) {
  const int64_t left_ns = e.deadline_ns - clock_.NowUnixNanos();
  const int64_t timeout_s =
      std::clamp<int64_t>((left_ns + 999'999'999) / 1'000'000'000, 1, kHubMaxTimeoutS);
  json body = {{"schema_version", "vigil.hub/v1"},
               {"host", options_.link.host},
               {"escalation_id", HubEscalationId(e)},
               {"rule", e.rule.substr(0, kHubMaxRule)},
               {"action", enforce::ActionKindName(e.proposed)},
               {"reason", e.reason.substr(0, kHubMaxReason)},
               {"timeout_s", timeout_s},
               {"default", e.on_timeout == enforce::TimeoutDefault::kEnforce ? "approve" : "deny"}};
  if (e.target.kind == enforce::TargetKind::kProcess && e.target.pid > 0) {
    body["pid"] = e.target.pid;
  }
  auto reply =
      client_->Post("/v1/escalations", body.dump(-1, ' ', false, json::error_handler_t::replace));
  t->reachable = false;
  if (!reply.has_value()) {
    Error(reply.error().message());
    return false;
  }
  if (reply->status != 200 && reply->status != 201) {
    Error("POST /v1/escalations: HTTP " + std::to_string(reply->status) + ": " + reply->error);
    return false;
  }
  if (!ReadState(reply->body, t)) return false;
  t->reachable = true;
  if (failing_) spdlog::info("hub escalations: {} answers again", options_.link.url);
  failing_ = false;
  if (reply->status == 201) {
    forwarded_->Inc();
    spdlog::info("escalation {} ({} {}) handed to the hub as escalation {}", e.id,
                 enforce::ActionKindName(e.proposed), e.target.ToString(), t->hub_id);
  }
  return true;
}

bool HubEscalations::Refresh(Tracked* t) {
  auto reply = client_->Get("/v1/escalations/" + std::to_string(t->hub_id));
  t->reachable = false;
  if (!reply.has_value()) {
    Error(reply.error().message());
    return false;
  }
  if (reply->status == 404) {  // the hub lost it (a new store): ask again
    t->hub_id = 0;
    return false;
  }
  if (reply->status != 200) {
    Error("GET /v1/escalations/" + std::to_string(t->hub_id) + ": HTTP " +
          std::to_string(reply->status) + ": " + reply->error);
    return false;
  }
  if (!ReadState(reply->body, t)) return false;
  t->reachable = true;
  if (failing_) spdlog::info("hub escalations: {} answers again", options_.link.url);
  failing_ = false;
  return true;
}

bool HubEscalations::Answer(const enforce::Escalation& e, const Tracked& t) {
  std::string outcome, by;
  bool approve = false;
  if (t.state == "approved" || t.state == "denied") {
    outcome = t.state;
    approve = t.state == "approved";
    by = "hub:" + (t.decided_by.empty() ? std::string("?") : t.decided_by);
  } else if (t.state == "timed_out" && (t.outcome == "approve" || t.outcome == "deny")) {
    outcome = "timed_out";
    approve = t.outcome == "approve";
    by = "hub:timeout";
  } else {
    spdlog::warn("escalation {}: the hub reports state \"{}\", outcome \"{}\"; waiting", e.id,
                 t.state, t.outcome);
    return false;
  }
  const core::Result<enforce::Outcome> done =
      approve ? enforcer_.Approve(e.id, by) : enforcer_.Deny(e.id, by);
  if (done.has_value()) {
    (outcome == "approved" ? approved_ : outcome == "denied" ? denied_ : timed_out_)->Inc();
    spdlog::info("escalation {}: {} at the hub ({}): {}", e.id, outcome, by, done->detail);
  } else if (done.error().code() == core::StatusCode::kFailedPrecondition) {
    // Decided here in the meantime (its deadline, or a person on this host): that stands.
    decided_locally_->Inc();
    spdlog::info("escalation {}: the hub's answer ({}) came after it was settled here: {}", e.id,
                 outcome, done.error().message());
  } else {
    spdlog::error("escalation {}: carrying out the hub's answer ({}): {}", e.id, outcome,
                  done.error().message());
    return false;  // tried again at the next round
  }
  if (options_.on_answer) options_.on_answer(e, outcome, by, done);
  return true;
}

void HubEscalations::Vanished(const std::map<uint64_t, Tracked>& gone) {
  // No longer pending, and not answered through the hub: settled here. Look up how.
  auto all = enforcer_.Escalations(/*pending_only=*/false);
  if (!all.has_value()) {
    spdlog::warn("hub escalations: reading the ledger: {}", all.error().message());
    return;
  }
  for (const enforce::Escalation& e : *all) {
    auto it = gone.find(e.id);
    if (it == gone.end()) continue;
    if (e.state == enforce::EscalationState::kExpired) {
      if (it->second.reachable) {
        timed_out_->Inc();
      } else {
        default_unreachable_->Inc();
        spdlog::warn(
            "escalation {}: the hub could not be reached before its deadline; its "
            "default ({}) was applied",
            e.id, enforce::TimeoutDefaultName(e.on_timeout));
      }
    } else {
      decided_locally_->Inc();
    }
  }
}

}  // namespace vigil::agent
