// Logins, the adjudication figures as JSON and the web UI's files (web.h).

#include "hub/web.h"

#include <httplib.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>

#include "hub/model_plots.h"
#include "hub/requests.h"
#include "hub/users.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr const char* kWebJsonType = "application/json";
constexpr const char* kBadLogin = "wrong user name or password";
constexpr size_t kMaxTrackedClients = 10000;

void SetWebHeaders(httplib::Response& r) {
  r.set_header("Content-Security-Policy", std::string(kWebCsp));
  r.set_header("X-Content-Type-Options", "nosniff");
  r.set_header("X-Frame-Options", "DENY");
  r.set_header("Referrer-Policy", "no-referrer");
  r.set_header("Cache-Control", "no-store");
}

void WebError(httplib::Response& r, int status, std::string_view code, std::string_view message) {
  r.status = status;
  r.set_content(json{{"schema_version", kHubSchemaVersion},
                     {"error", {{"code", code}, {"message", message}}}}
                    .dump(),
                kWebJsonType);
}

// What a client sent as a user name, made safe to record: printable ASCII, at most 64 bytes.
std::string Shown(std::string_view name) {
  std::string s(name.substr(0, 64));
  for (char& c : s) {
    if (c < ' ' || c > '~') c = '?';
  }
  return s;
}

// Failed logins per client address in fixed windows of kLoginWindowS.
class LoginLimiter {
 public:
  // Seconds the client must wait (0: it may try).
  int64_t Blocked(const std::string& client, int64_t now) {
    std::lock_guard lock(mu_);
    auto it = failures_.find(client);
    if (it == failures_.end()) return 0;
    if (now - it->second.start >= kLoginWindowS) {
      failures_.erase(it);
      return 0;
    }
    return it->second.count >= kMaxLoginFailures ? it->second.start + kLoginWindowS - now : 0;
  }
  void Failed(const std::string& client, int64_t now) {
    std::lock_guard lock(mu_);
    if (failures_.size() >= kMaxTrackedClients) {
      std::erase_if(failures_, [&](const auto& kv) { return now - kv.second.start >= kLoginWindowS; });
      if (failures_.size() >= kMaxTrackedClients) failures_.erase(failures_.begin());
    }
    auto [it, fresh] = failures_.try_emplace(client, Window{now, 0});
    if (!fresh && now - it->second.start >= kLoginWindowS) it->second = Window{now, 0};
    ++it->second.count;
  }

 private:
  struct Window {
    int64_t start;
    int count;
  };
  std::mutex mu_;
  std::map<std::string, Window> failures_;
};

struct WebState {
  WebDeps deps;
  LoginLimiter limiter;
  // argon2id takes 64 MiB per check: at most two at once.
  std::counting_semaphore<2> hashing{2};
  // Checked instead when the user does not exist, so that both answers take as long.
  std::once_flag dummy_once;
  std::string dummy_hash;

  const std::string& DummyHash() {
    std::call_once(dummy_once, [this] {
      unsigned char raw[16];
      randombytes_buf(raw, sizeof(raw));
      char hex[33];
      sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
      auto h = HashPassword(std::string("dummy-") + hex);
      dummy_hash = h.has_value() ? *h : std::string();
    });
    return dummy_hash;
  }

  // The users as last audited (the file `<users>.audited`, read once); see ReadUsers.
  std::mutex users_mu;
  std::optional<std::vector<UserEntry>> audited;
};

const UserEntry* FindUser(const std::vector<UserEntry>& users, std::string_view name) {
  for (const UserEntry& u : users) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

// The users file's users (none when it is absent). Each difference from the users as last
// audited (a user added, removed, given another role or password) is first written to the audit
// log, then the snapshot `<users>.audited` is replaced: a change made with `vigil hub user`,
// while the hub runs or not, is audited before the next login can use it.
core::Result<std::vector<UserEntry>> ReadUsers(WebState& st) {
  std::vector<UserEntry> users;
  if (st.deps.users_file.empty()) return users;
  auto loaded = LoadUsers(st.deps.users_file);
  if (loaded.has_value()) {
    users = std::move(loaded).value();
  } else if (loaded.error().code() != core::StatusCode::kNotFound) {
    return loaded.error();
  }
  const std::string snapshot = st.deps.users_file + ".audited";
  std::lock_guard lock(st.users_mu);
  if (!st.audited) {
    auto before = LoadUsers(snapshot);
    if (before.has_value()) {
      st.audited = std::move(before).value();
    } else if (before.error().code() == core::StatusCode::kNotFound) {
      st.audited.emplace();
    } else {
      return before.error();
    }
  }
  bool changed = false;
  auto record = [&](const char* action, const UserEntry& u, json extra) -> core::Status {
    changed = true;
    json p = {{"action", action},
              {"subject", u.name},
              {"role", RoleName(u.role)},
              {"by", "users-file"},
              {"file", st.deps.users_file}};
    p.update(extra);
    return st.deps.audit(audit::RecordType::kAccessGrant, std::move(p));
  };
  for (const UserEntry& u : users) {
    const UserEntry* old = FindUser(*st.audited, u.name);
    if (old == nullptr) {
      VIGIL_RETURN_IF_ERROR(record("user-added", u, json::object()));
    } else if (old->role != u.role || old->hash != u.hash) {
      VIGIL_RETURN_IF_ERROR(record("user-changed", u,
                                   {{"previous_role", RoleName(old->role)},
                                    {"password_changed", old->hash != u.hash}}));
    }
  }
  for (const UserEntry& old : *st.audited) {
    if (FindUser(users, old.name) == nullptr) {
      VIGIL_RETURN_IF_ERROR(record("user-removed", old, json::object()));
    }
  }
  if (changed) {
    st.audited = users;
    // Audited already: a snapshot that cannot be written only means the change is audited
    // again later.
    if (core::Status s = SaveUsers(snapshot, users); !s.ok()) {
      spdlog::warn("hub: users: {}", s.message());
    }
  }
  return users;
}

void Login(WebState& st, const httplib::Request& q, httplib::Response& r) {
  SetWebHeaders(r);
  const int64_t now = st.deps.clock->NowUnixNanos() / 1'000'000'000;
  const std::string client = q.remote_addr;
  const json body = json::parse(q.body, nullptr, false);
  if (!body.is_object() || !body.contains("user") || !body["user"].is_string() ||
      !body.contains("password") || !body["password"].is_string()) {
    return WebError(r, 400, "INVALID_ARGUMENT",
                 "expected {\"user\": string, \"password\": string}");
  }
  const std::string user = body["user"].get<std::string>();
  const std::string password = body["password"].get<std::string>();
  json record = {{"action", "login"}, {"subject", Shown(user)}, {"client", client}};
  auto audit = [&](std::string_view result, std::string_view reason) {
    record["result"] = result;
    if (!reason.empty()) record["reason"] = reason;
    return st.deps.audit(audit::RecordType::kAccessGrant, record);
  };

  if (const int64_t wait = st.limiter.Blocked(client, now); wait > 0) {
    if (core::Status s = audit("refused", "too many failed logins"); !s.ok()) {
      return WebError(r, 503, "UNAVAILABLE", s.message());
    }
    r.set_header("Retry-After", std::to_string(wait));
    return WebError(r, 429, "RESOURCE_EXHAUSTED",
                 "too many failed logins from this address; retry in " + std::to_string(wait) +
                     " s");
  }

  auto users = ReadUsers(st);
  if (!users.has_value()) {
    spdlog::error("hub: login: {}", users.error().message());
    return WebError(r, 503, "UNAVAILABLE",
                    "the hub's users file is unusable or cannot be audited (see the hub's log)");
  }
  const UserEntry* found = FindUser(*users, user);
  bool ok = false;
  {
    st.hashing.acquire();
    const std::string& hash = found != nullptr ? found->hash : st.DummyHash();
    ok = !hash.empty() && VerifyPassword(hash, password) && found != nullptr;
    st.hashing.release();
  }
  if (!ok) {
    st.limiter.Failed(client, now);
    if (core::Status s = audit("failed", found != nullptr ? "wrong password" : "unknown user");
        !s.ok()) {
      return WebError(r, 503, "UNAVAILABLE", s.message());
    }
    r.set_header("WWW-Authenticate", "Bearer realm=\"vigil-hub\"");
    return WebError(r, 401, "UNAUTHENTICATED", kBadLogin);
  }
  const int64_t expires = now + st.deps.login_ttl_s;
  record["role"] = RoleName(found->role);
  record["expires"] = expires;
  if (core::Status s = audit("ok", ""); !s.ok()) return WebError(r, 503, "UNAVAILABLE", s.message());
  r.set_content(json{{"schema_version", kHubSchemaVersion},
                     {"token", st.deps.auth->Issue(found->name, found->role,
                                                   st.deps.login_ttl_s, now)},
                     {"user", found->name},
                     {"role", RoleName(found->role)},
                     {"expires", expires}}
                    .dump(),
                kWebJsonType);
}

json PrecisionJson(const std::vector<AdjudicationCount>& counts) {
  json list = json::array();
  for (const AdjudicationCount& c : counts) {
    const int64_t total = c.true_positive + c.false_positive + c.benign;
    list.push_back({{"kind", c.kind},
                    {"name", c.name},
                    {"true_positive", c.true_positive},
                    {"false_positive", c.false_positive},
                    {"benign", c.benign},
                    {"adjudicated", total},
                    {"precision", total > 0 ? json(double(c.true_positive) / total) : json()},
                    {"false_positive_ratio",
                     total > 0 ? json(double(c.false_positive + c.benign) / total) : json()},
                    {"false_negative", c.false_negative},
                    // Of the detections that should have come from it, the share it missed.
                    {"false_negative_rate",
                     c.true_positive + c.false_negative > 0
                         ? json(double(c.false_negative) / (c.true_positive + c.false_negative))
                         : json()}});
  }
  return list;
}

// GET /v1/models/scores reads at most this many of the newest scores.
constexpr int64_t kMaxScoreSamples = 200'000;

void ServeAsset(std::string_view name, httplib::Response& r) {
  const WebAsset* a = FindWebAsset(name);
  if (a == nullptr) {
    return WebError(r, 404, "NOT_FOUND", "no file \"" + Shown(name) + "\" in the web UI");
  }
  SetWebHeaders(r);
  r.set_content(std::string(a->body), std::string(a->content_type));
}

}  // namespace

void AddWebRoutes(httplib::Server& s, WebDeps deps) {
  auto st = std::make_shared<WebState>();
  st->deps = std::move(deps);
  // Changes to the users file made while no hub ran are audited now.
  if (auto users = ReadUsers(*st); !users.has_value()) {
    spdlog::error("hub: users: {}", users.error().message());
  }

  s.Post("/v1/login",
         [st](const httplib::Request& q, httplib::Response& r) { Login(*st, q, r); });

  s.Get("/v1/precision", [st](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!st->deps.authorize(q, r, Role::kViewer, &c)) return;
    auto counts = st->deps.store->AdjudicationCounts();
    if (!counts.has_value()) return WebError(r, 503, "UNAVAILABLE", counts.error().message());
    r.set_content(json{{"schema_version", kHubSchemaVersion},
                       {"detectors", PrecisionJson(*counts)}}
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  kWebJsonType);
  });

  s.Get("/v1/models/scores", [st](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!st->deps.authorize(q, r, Role::kViewer, &c)) return;
    int days = 0;  // 0: every age (the newest kMaxScoreSamples)
    if (q.has_param("days")) {
      const std::string t = q.get_param_value("days");
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), days);
      if (ec != std::errc() || end != t.data() + t.size() || days < 1 || days > 365) {
        return WebError(r, 400, "INVALID_ARGUMENT", "days: expected an integer in 1..365");
      }
    }
    const int64_t now_ms = st->deps.clock->NowUnixNanos() / 1'000'000;
    const int64_t since = days == 0 ? 0 : now_ms - int64_t{days} * 86'400'000;
    auto samples = st->deps.store->ScoreSamples(since, kMaxScoreSamples);
    if (!samples.has_value()) return WebError(r, 503, "UNAVAILABLE", samples.error().message());
    json j = ModelScorePlots(*samples);
    j["schema_version"] = kHubSchemaVersion;
    j["since_ms"] = since;
    j["samples"] = samples->size();
    j["sample_limit"] = kMaxScoreSamples;
    r.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), kWebJsonType);
  });

  s.Get("/", [](const httplib::Request&, httplib::Response& r) { ServeAsset("index.html", r); });
  s.Get("/ui", [](const httplib::Request&, httplib::Response& r) {
    r.set_redirect("/");
  });
  s.Get(R"(/ui/([A-Za-z0-9._-]{1,64}))", [](const httplib::Request& q, httplib::Response& r) {
    ServeAsset(q.matches[1].str(), r);
  });
}

}  // namespace vigil::hub
