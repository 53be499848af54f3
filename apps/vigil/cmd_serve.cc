// vigil serve: the decision service (docs/api.md); vigil token issue: bearer tokens for it;
// vigil score / vigil decide: thin clients of its HTTP API.
//
// serve's start-up, in order (undone in reverse on the way out): config -> signals ->
// listeners (healthz answers, readyz says "not ready") -> model and rules loaded and verified
// (readyz ready; vigil_api_ready_seconds records the time from start) -> wait for SIGINT/SIGTERM.
// SIGHUP meanwhile reloads the model and rules files (verified again where configured) and swaps
// them in; a reload that fails leaves the loaded ones serving and says why on stderr.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api/auth.h"
#include "api/codec.h"
#include "api/frontend.h"
#include "api/grpc_api.h"
#include "api/http_api.h"
#include "api/orders.h"
#include "apps/vigil/commands.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/metrics.h"
#include "service/decision_service.h"
#include "service/serve_config.h"

namespace vigil::app {
namespace {

std::atomic<bool> g_serve_stop{false};
extern "C" void RecordServeStop(int) { g_serve_stop.store(true); }

struct ServeOptions {
  std::string config;
  bool json = false;
};

int RunServe(const ServeOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  auto config = service::LoadServeConfig(o.config);
  if (!config.has_value()) return ReportError("serve", config.error());

  sigset_t set = BlockStopSignals(RecordServeStop);
  // SIGHUP (reload) is taken by sigtimedwait below; blocked before any thread starts.
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A client that hangs up while its answer is written is that connection's error, not the
  // server's end.
  signal(SIGPIPE, SIG_IGN);

  core::Registry& registry = core::Registry::Get();
  const core::Clock& clock = core::SystemClock::Get();
  service::ModelDecisionService svc(config->scoring, registry, clock);
  api::OrderBook orders;
  api::Authenticator auth(config->auth);
  api::Frontend frontend(config->frontend, auth, svc, orders, registry, clock);
  if (auto s = frontend.Init(); !s.ok()) return ReportError("serve", s);
  auto ready_gauge = registry.GetGauge("vigil_api_ready_seconds",
                                       "Seconds from process start to ready (0 until ready).");
  if (!ready_gauge.has_value()) return ReportError("serve", ready_gauge.error());

  std::unique_ptr<api::HttpApi> http;
  std::unique_ptr<api::GrpcApi> grpc;
  if (config->http) {
    http = std::make_unique<api::HttpApi>(*config->http, frontend, registry);
    if (auto s = http->Start(); !s.ok()) return ReportError("serve", s);
  }
  if (config->grpc) {
    grpc = std::make_unique<api::GrpcApi>(*config->grpc, frontend);
    if (auto s = grpc->Start(); !s.ok()) return ReportError("serve", s);
  }
  if (auto s = svc.Load(*config); !s.ok()) {
    orders.Shutdown();
    return ReportError("serve", s);
  }
  const double ready_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  (*ready_gauge)->Set(ready_s);
  nlohmann::json status = {{"status", "ready"},
                           {"http_port", http ? http->port() : 0},
                           {"grpc_port", grpc ? grpc->port() : 0},
                           {"ready_seconds", ready_s}};
  if (o.json) {
    std::printf("%s\n", status.dump().c_str());
  } else {
    std::printf("vigil serve: ready in %.3f s; http port %d, grpc port %d\n", ready_s,
                http ? http->port() : 0, grpc ? grpc->port() : 0);
  }
  std::fflush(stdout);

  timespec tick{0, 200'000'000};
  while (!g_serve_stop.load()) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGHUP) {
      if (auto s = svc.Load(*config); !s.ok()) {
        std::fprintf(stderr, "vigil serve: reload failed, still serving the loaded model: %s\n",
                     s.message().c_str());
      } else {
        std::fprintf(stderr, "vigil serve: reloaded %s\n", config->model.c_str());
      }
      continue;
    }
    if (sig > 0) break;
  }
  orders.Shutdown();
  if (grpc) grpc->Stop();
  if (http) http->Stop();
  return kExitOk;
}

struct TokenOptions {
  std::string key_file, issuer, audience, subject, scope;
  std::string ttl = "1h";
};

int RunTokenIssue(const TokenOptions& o) {
  auto key = service::ReadJwtKeyFile(o.key_file);
  if (!key.has_value()) return ReportError("token issue", key.error().WithContext("--key-file"));
  auto scopes = api::ParseScopes(o.scope);
  if (!scopes.has_value()) return ReportError("token issue", scopes.error().WithContext("--scope"));
  auto ttl = core::ParseDurationSeconds(o.ttl);
  if (!ttl.has_value()) return ReportError("token issue", ttl.error().WithContext("--ttl"));
  const int64_t now = core::SystemClock::Get().NowUnixNanos() / 1'000'000'000;
  api::TokenClaims c;
  c.subject = o.subject;
  c.issuer = o.issuer;
  c.audience = o.audience;
  c.scopes = *scopes;
  c.expires = now + static_cast<int64_t>(*ttl);
  std::printf("%s\n", api::IssueJwt(c, *key, now).c_str());
  return kExitOk;
}

struct ClientOptions {
  std::string server;
  std::string event;
  std::string token_file;
  std::string ca, cert, key;
  int timeout_ms = 5000;
  bool json = false;
};

// POSTs the request file to `route`; prints the answer. Exit: 0 answered and harmless, 1 the
// answer is a finding (anomalous / an action other than allow) or the server failed, 2 the
// request was refused as bad input.
int RunClient(const char* command, const char* route, const ClientOptions& o) {
  signal(SIGPIPE, SIG_IGN);  // a server that hangs up is reported as an error, not a crash
  auto body = core::ReadFile(o.event, api::kMaxBodyBytes);
  if (!body.has_value()) return ReportError(command, body.error().WithContext("--event"));
  std::string token;
  if (!o.token_file.empty()) {
    std::ifstream t(o.token_file);
    if (!t || !std::getline(t, token) || token.empty()) {
      return ReportError(command, core::NotFound(o.token_file + ": no token in it"));
    }
  }
  std::unique_ptr<httplib::Client> client;
  try {
    client = o.cert.empty() ? std::make_unique<httplib::Client>(o.server)
                            : std::make_unique<httplib::Client>(o.server, o.cert, o.key);
  } catch (const std::exception& e) {
    return ReportError(command, core::InvalidArgument("--server \"" + o.server + "\": " + e.what()));
  }
  if (!client->is_valid()) {
    return ReportError(command, core::InvalidArgument("--server \"" + o.server +
                                                      "\": not a usable URL or client certificate"));
  }
  if (!o.ca.empty()) client->set_ca_cert_path(o.ca.c_str());
  client->set_connection_timeout(0, o.timeout_ms * 1000);
  client->set_read_timeout(0, o.timeout_ms * 1000);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client->Post(route, headers, *body, "application/json");
  if (!res) {
    return ReportError(command, core::Unavailable(o.server + route + ": " +
                                                  httplib::to_string(res.error())));
  }
  const auto answer = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::string message = res->body;
    if (answer.is_object() && answer.contains("error")) {
      message = answer["error"].value("code", "") + ": " + answer["error"].value("message", "");
    }
    std::fprintf(stderr, "vigil %s: error: HTTP %d: %s\n", command, res->status, message.c_str());
    return res->status == 400 ? kExitUsage : kExitFailure;
  }
  if (o.json || !answer.is_object()) {
    std::printf("%s\n", res->body.c_str());
  } else if (std::string(route) == "/v1/score") {
    const auto& r = answer["result"];
    std::printf("score %.4f%s  model %s %s  policy %s%s%s\n", r.value("score", 0.0),
                r.value("anomalous", false) ? " (anomalous)" : "",
                r.value("model_name", "").c_str(), r.value("model_version", "").c_str(),
                answer.value("policy_version", "").c_str(), r.value("cached", false) ? "  cached" : "",
                r.value("fallback", false) ? ("  fallback: " + r.value("fallback_reason", "")).c_str()
                                           : "");
    for (const auto& e : r["explanation"]) {
      std::printf("  %.4f  %s\n", e.value("weight", 0.0), e.value("what", "").c_str());
    }
  } else {
    std::printf("%s%s%s  policy %s\n", answer.value("action", "").c_str(),
                answer.value("rule", "").empty() ? "" : "  rule: ",
                answer.value("rule", "").c_str(), answer.value("policy_version", "").c_str());
    if (!answer.value("reason", "").empty()) std::printf("  %s\n", answer.value("reason", "").c_str());
  }
  if (std::string(route) == "/v1/score") {
    return answer["result"].value("anomalous", false) ? kExitFailure : kExitOk;
  }
  return answer.value("action", "allow") == "allow" ? kExitOk : kExitFailure;
}

void AddClientFlags(CLI::App* cmd, ClientOptions* o) {
  cmd->add_option("--server", o->server, "Base URL of vigil serve's HTTP API (http[s]://host:port)")
      ->required();
  cmd->add_option("--event", o->event, "The request as JSON (docs/api.md)")->required();
  cmd->add_option("--token-file", o->token_file, "File whose first line is a bearer token");
  cmd->add_option("--ca", o->ca, "PEM CA bundle that the server's certificate must chain to");
  cmd->add_option("--cert", o->cert, "PEM client certificate (mTLS)");
  cmd->add_option("--key", o->key, "PEM private key of --cert");
  cmd->add_option("--timeout-ms", o->timeout_ms, "Connect and read timeout")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the server's JSON answer as it is");
}

}  // namespace

RunFn AddServeCommand(CLI::App& root) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = root.add_subcommand(
      "serve", "Serve the decision APIs (gRPC and JSON over HTTP): score, decide, enforce");
  cmd->add_option("--config", o->config, "Service configuration (YAML, docs/api.md)")->required();
  cmd->add_flag("--json", o->json, "Print the ready line (ports, start-up time) as JSON");
  cmd->footer(
      "SIGHUP reloads the model and rules files (verified again when public_key is set); a "
      "failed reload keeps the loaded ones.\nExit codes: 0 stopped by SIGINT/SIGTERM, 1 failure, "
      "2 bad config or files.");
  return [o] { return RunServe(*o); };
}

RunFn AddTokenCommand(CLI::App& root) {
  auto o = std::make_shared<TokenOptions>();
  CLI::App* token = root.add_subcommand("token", "Bearer tokens for vigil serve");
  token->require_subcommand(1);
  CLI::App* issue = token->add_subcommand("issue", "Issue an HS256 JWT (printed on stdout)");
  issue->add_option("--key-file", o->key_file, "The shared HS256 key (>= 32 bytes)")->required();
  issue->add_option("--issuer", o->issuer, "iss claim")->required();
  issue->add_option("--audience", o->audience, "aud claim")->required();
  issue->add_option("--subject", o->subject, "sub claim: who the token is for")->required();
  issue->add_option("--scope", o->scope, "Space-separated scopes: score decide enforce agent")
      ->required();
  issue->add_option("--ttl", o->ttl, "Lifetime (e.g. 15m, 1h, 1d)")->capture_default_str();
  return [o] { return RunTokenIssue(*o); };
}

RunFn AddScoreCommand(CLI::App& root) {
  auto o = std::make_shared<ClientOptions>();
  CLI::App* cmd = root.add_subcommand("score", "Ask a vigil serve for a score (POST /v1/score)");
  AddClientFlags(cmd, o.get());
  cmd->footer("Exit codes: 0 not anomalous, 1 anomalous or failure, 2 bad request.");
  return [o] { return RunClient("score", "/v1/score", *o); };
}

RunFn AddDecideCommand(CLI::App& root) {
  auto o = std::make_shared<ClientOptions>();
  CLI::App* cmd =
      root.add_subcommand("decide", "Ask a vigil serve for a policy decision (POST /v1/decide)");
  AddClientFlags(cmd, o.get());
  cmd->footer("Exit codes: 0 allow, 1 any other action or failure, 2 bad request.");
  return [o] { return RunClient("decide", "/v1/decide", *o); };
}

}  // namespace vigil::app
