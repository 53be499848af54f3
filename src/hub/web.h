#pragma once

// What the hub serves to people in a browser (docs/hub.md, "People and logins", "Web UI"):
//
//   POST /v1/login {"user","password"}    no credentials: a short-lived token for the user's role
//   GET  /v1/precision                    viewer: per-rule and per-model adjudication counts,
//                                         missed detections and false-negative rates
//   GET  /v1/models/scores?days=N         viewer: score distribution and drift per model
//                                         (hub/model_plots.h; N 1..365; without: any age),
//                                         from the newest 200,000 scores
//   GET  /, /ui/NAME                      the web UI's files (embedded at build time), with a
//                                         Content-Security-Policy allowing only the hub itself
//
// Logins check the users file (users.h), read again at every attempt so that `vigil hub user
// add|remove` applies at once. A wrong password and an unknown user get the same 401 and take
// about the same time (an unknown user is checked against a dummy hash); each client address may
// fail kMaxLoginFailures times per kLoginWindowS, then gets 429 until the window ends. Every
// attempt, successful or not, is an access-grant audit record, and so is every change to the
// users file, noticed when the hub starts and before each login (docs/hub.md).

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "hub/auth.h"
#include "hub/store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace vigil::hub {

inline constexpr int kMaxLoginFailures = 5;
inline constexpr int64_t kLoginWindowS = 300;

// The headers every web UI answer carries (also set on the login answer).
inline constexpr std::string_view kWebCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct WebDeps {
  Store* store = nullptr;
  const HubAuth* auth = nullptr;
  const core::Clock* clock = nullptr;
  core::Registry* registry = nullptr;
  // The server's bearer-token check: false after answering 401/403 (and counting it).
  std::function<bool(const httplib::Request&, httplib::Response&, Role, Caller*)> authorize;
  // Appends an audit record (the server's audit log); an error fails the request with 503.
  std::function<core::Status(audit::RecordType, nlohmann::json)> audit;
  std::string users_file;    // "": logins are refused (401)
  int64_t login_ttl_s = 900;
};

// Adds the routes above to `s`; the state they share (the failure counts) lives as long as `s`
// keeps the handlers.
void AddWebRoutes(httplib::Server& s, WebDeps deps);

// One file of the web UI (web_assets.cc, generated from src/hub/web/ at build time).
struct WebAsset {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view content_type;
  std::string_view body;
};
const WebAsset* FindWebAsset(std::string_view name);

}  // namespace vigil::hub
