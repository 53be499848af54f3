// vigil gateway: the industrial gateway. A Modbus/TCP proxy between SCADA/HMI clients and a PLC
// that decides every actuator write inline (docs/gateway.md).
//
// Start-up, undone in reverse on the way out: config -> sinks -> audit log -> enforce mode's
// signature check -> gateway (models, model gate, Modbus listener, metrics server, MQTT
// telemetry) -> signal wait.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "apps/vigil/artifact_trust.h"
#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/outputs.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "policy/decision.h"
#include "pipeline/sink.h"
#include "sensor/batadal.h"

namespace vigil::app {
namespace {

struct GatewayCmdOptions {
  std::string config;
  std::string mode;
  std::string audit_dir;
  std::string audit_key;
  std::string audit_fsync = "batch";
  std::string duration;
  std::vector<std::string> trusted_keys;  // empty: the host config's trusted_keys
  HubLinkFlags hub;    // a hub:URL sink's settings
  NatsLinkFlags nats;  // a nats:URL sink's settings
  bool check = false;
  bool json = false;
};

nlohmann::json ModelSummary(const gateway::Gateway& g) {
  const gateway::ActuatorStateModel* m = g.model();
  if (m == nullptr) return nullptr;
  return {{"training", m->source()},
          {"rows", m->rows()},
          {"actuators", m->actuators()},
          {"context", m->context()}};
}

nlohmann::json TelemetrySummary(const gateway::Gateway& g) {
  const gateway::TelemetryConfig& t = g.config().telemetry;
  if (t.topics.empty()) return nullptr;
  nlohmann::json topics = nlohmann::json::array();
  for (const auto& topic : t.topics) {
    nlohmann::json signals = nlohmann::json::array();
    for (const auto& s : topic.signals) signals.push_back(s.name);
    topics.push_back({{"topic", topic.topic}, {"signals", signals}});
  }
  nlohmann::json j = {{"broker", t.broker.ToString()}, {"client_id", t.client_id},
                      {"topics", topics}, {"scoring", nullptr}};
  if (const gateway::SensorScorer* s = g.scorer()) {
    j["scoring"] = {{"signals", s->signals()},
                    {"predictors", s->predictors()},
                    {"autoencoder", s->autoencoder()}};
    if (s->predictors()) j["scoring"]["predictors_threshold"] = s->residual_threshold();
    if (s->autoencoder()) j["scoring"]["autoencoder_threshold"] = s->kitnet_threshold();
  }
  return j;
}

// Whether the config asks for any enforcement: the gateway's mode or one asset's.
bool EnforceWanted(const gateway::GatewayConfig& c) {
  if (c.mode == gateway::Mode::kEnforce) return true;
  for (const gateway::AssetConfig& a : c.assets) {
    if (a.mode == gateway::Mode::kEnforce) return true;
  }
  return false;
}

// Enforce mode's precondition (docs/gateway.md, "Enforce mode and signatures"): the config file
// (the assets' limits and modes are the gateway's policy) and the training CSV every model is
// learned from are signed by a trusted key: --trusted-key, else the host config's trusted_keys
// (never the gateway config's own: it is one of the files checked). `policy_files` are the config
// and every rules file (and bundle manifest) of policy.rules. Returns the refusal, "" when
// everything is trusted; refusals are recorded in `audit` when it is non-null.
// `files` holds the bytes the config, the rules and the training CSV were parsed from: those are
// checked (the gateway's policy engine reads the rules files once more when it starts).
std::string CheckGatewayTrust(const gateway::GatewayConfig& c,
                              const std::vector<std::string>& policy_files,
                              const std::vector<std::string>& trusted_keys, AuditTrail* audit,
                              const ArtifactFiles& files) {
  std::vector<std::string> keys = trusted_keys;
  if (keys.empty()) {
    auto host = core::LoadConfig(std::string(core::kDefaultConfigPath));
    if (!host.has_value()) return host.error().WithContext("trusted keys").message();
    keys = host->trusted_keys;
  }
  std::vector<ModelArtifact> models;
  if (!c.model.training.empty()) models.push_back({c.model.training, "actuator-state", "1"});
  return CheckEnforceArtifacts(keys, policy_files, models, audit, &files);
}

// Monitor mode everywhere: the gateway's mode and every asset's override.
void FallBackToMonitor(gateway::GatewayConfig* c) {
  c->mode = gateway::Mode::kMonitor;
  for (gateway::AssetConfig& a : c->assets) {
    if (a.mode.has_value()) a.mode = gateway::Mode::kMonitor;
  }
}

int RunGateway(const GatewayCmdOptions& o) {
  // Log lines go to stderr: stdout carries the sinks' findings and the --json output.
  if (auto st = core::InitLogging(core::LogLevel::kInfo, core::LogFormat::kText); !st.ok()) {
    return ReportError("gateway", st);
  }
  // The config and the training CSV, each read once: what is parsed (and learned from) is what
  // enforce mode checks.
  ArtifactFiles files;
  auto config_text = files.Read(o.config, core::kMaxConfigBytes);
  if (!config_text.has_value()) {
    return ReportError("gateway", config_text.error().WithContext("gateway config"));
  }
  auto loaded = gateway::ParseGatewayConfig(*config_text, o.config);
  if (!loaded.has_value()) return ReportError("gateway", loaded.error());
  gateway::GatewayConfig c = std::move(loaded).value();
  const std::string* training = nullptr;
  if (!c.model.training.empty()) {
    auto read = files.Read(c.model.training, sensor::kMaxBatadalFileBytes);
    if (!read.has_value()) {
      return ReportError("gateway", read.error().WithContext(c.source + ": model.training"));
    }
    training = files.Find(c.model.training);
  }
  if (o.mode == "monitor") c.mode = gateway::Mode::kMonitor;
  if (o.mode == "enforce") c.mode = gateway::Mode::kEnforce;
  // The rules, loaded once here to report a bad file before anything starts and to keep the
  // bytes enforce mode checks.
  std::vector<std::string> policy_files = {c.source};
  {
    auto rules = gateway::CreateGatewayPolicy(c, nullptr);
    if (!rules.has_value()) return ReportError("gateway", rules.error());
    const auto snap = (*rules)->Current();
    files.Keep(snap->sources);
    for (const auto& source : snap->sources) policy_files.push_back(source.first);
  }
  uint64_t duration_s = 0;
  if (!o.duration.empty()) {
    auto d = core::ParseDurationSeconds(o.duration);
    if (!d.has_value()) return ReportError("gateway", d.error().WithContext("--duration"));
    duration_s = *d;
  }

  const bool enforce_wanted = EnforceWanted(c);

  if (o.check) {
    auto g = gateway::Gateway::Create(c, {}, core::SystemClock::Get(), nullptr, training);
    if (!g.has_value()) return ReportError("gateway", g.error());
    const std::string refusal =
        enforce_wanted ? CheckGatewayTrust(c, policy_files, o.trusted_keys, nullptr, files) : "";
    nlohmann::json j = {{"config", c.source},
                        {"mode", gateway::ModeName(c.mode)},
                        {"assets", c.assets.size()},
                        {"listen", c.modbus.listen.ToString()},
                        {"upstream", c.modbus.upstream.ToString()},
                        {"model", ModelSummary(**g)},
                        {"policy", (*g)->Summary()["policy"]},
                        {"telemetry", TelemetrySummary(**g)}};
    if (enforce_wanted) {
      j["enforce"] = refusal.empty() ? "verified" : "refused";
      if (!refusal.empty()) j["enforce_refused"] = refusal;
    }
    if (o.json) {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s: ok (%s mode, %zu assets, %s -> %s)\n", c.source.c_str(),
                  std::string(gateway::ModeName(c.mode)).c_str(), c.assets.size(),
                  c.modbus.listen.ToString().c_str(), c.modbus.upstream.ToString().c_str());
      {
        const auto snap = (*g)->policy().Current();
        std::printf("policy: %zu rules enabled (%zu files besides the built-in rules), version %s, "
                    "stage %s\n",
                    snap->rules.enabled_count(), c.policy.rules.size(), snap->version.c_str(),
                    std::string(policy::StageName(snap->stage)).c_str());
      }
      if (!c.telemetry.topics.empty()) {
        size_t signals = 0;
        for (const auto& t : c.telemetry.topics) signals += t.signals.size();
        std::printf("telemetry: %zu topics, %zu signals from MQTT broker %s",
                    c.telemetry.topics.size(), signals, c.telemetry.broker.ToString().c_str());
        if ((*g)->scorer() != nullptr) {
          std::printf("; sensor scoring over %zu of them (%s%s%s)",
                      (*g)->scorer()->signals().size(),
                      (*g)->scorer()->predictors() ? "per-signal predictors" : "",
                      (*g)->scorer()->predictors() && (*g)->scorer()->autoencoder() ? ", " : "",
                      (*g)->scorer()->autoencoder() ? "autoencoder ensemble" : "");
        }
        std::printf("\n");
      }
      if ((*g)->model() != nullptr) {
        std::printf("model: %zu actuators against %zu context signals, learned from %llu rows of "
                    "%s\n",
                    (*g)->model()->actuators().size(), (*g)->model()->context().size(),
                    static_cast<unsigned long long>((*g)->model()->rows()),
                    (*g)->model()->source().c_str());
      }
      if (enforce_wanted && refusal.empty()) {
        std::printf("enforce: the config%s signed by a trusted key\n",
                    c.model.training.empty() ? " is" : " and the training data are");
      }
    }
    if (!refusal.empty()) {
      std::fprintf(stderr, "vigil gateway: ALERT enforce mode refused, it would run in monitor "
                           "mode: %s\n", refusal.c_str());
      return kExitFailure;
    }
    return kExitOk;
  }

  // Stop signals go to the waiting loop below, not to whichever thread the kernel picks.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  // The metrics registry and the sinks outlive the gateway (declared before it): a hub or NATS
  // sink's counters live in the registry the gateway serves on /metrics.
  core::Registry registry;
  auto sinks = MakeOutputs(c.sinks, pipeline::FileSinkOptions{}, o.hub, o.nats, c.host,
                           c.state_dir, registry);
  if (!sinks.has_value()) return ReportError("gateway", sinks.error().WithContext("sinks"));
  gateway::GatewayOutputs outputs;
  outputs.sinks = sinks->sinks;
  outputs.registry = &registry;
  AuditTrailOptions ao;
  ao.dir = o.audit_dir.empty() ? c.audit_dir : o.audit_dir;
  ao.key_path = AuditKeyPath(c.state_dir, o.audit_key);
  ao.fsync = o.audit_fsync;
  ao.writer = std::string("vigil gateway ") + VIGIL_VERSION;
  // Each signed checkpoint also goes to the hub (its hub and nats sinks), as the agent's do.
  ao.on_checkpoint = [&sinks](const audit::CheckpointNotice& n) { OfferCheckpoint(*sinks, n); };
  auto trail = AuditTrail::Open(ao);
  if (!trail.has_value()) return ReportError("gateway", trail.error());
  outputs.audit = &(*trail)->log();

  std::string refusal;
  if (enforce_wanted) {
    refusal = CheckGatewayTrust(c, policy_files, o.trusted_keys, trail->get(), files);
    if (!refusal.empty()) {
      spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", refusal);
      FallBackToMonitor(&c);
    }
  }

  auto created = gateway::Gateway::Create(c, outputs, core::SystemClock::Get(), nullptr, training);
  if (!created.has_value()) {
    (void)(*trail)->Close();
    return ReportError("gateway", created.error());
  }
  std::unique_ptr<gateway::Gateway> g = std::move(created).value();
  {
    const auto snap = g->policy().Current();
    (*trail)->PolicyChange("loaded", snap->version, snap->generation, policy_files,
                           "the gateway's assets, limits, modes and rules (stage " +
                               std::string(policy::StageName(snap->stage)) + ")");
  }
  // The records say whether the training data was verified (enforce mode, signatures held).
  const std::string learned = enforce_wanted && refusal.empty()
                                  ? "learned at start-up from training data signed by a trusted key"
                                  : "learned at start-up";
  if (g->model() != nullptr) {
    (*trail)->ModelChange("loaded", c.model.training, "actuator-state", "1", learned);
  }
  if (const gateway::SensorScorer* s = g->scorer()) {
    if (s->predictors()) {
      (*trail)->ModelChange("loaded", c.model.training, "gateway-predictors", "1",
                            "per-signal predictors over the telemetry, " + learned);
    }
    if (s->autoencoder()) {
      (*trail)->ModelChange("loaded", c.model.training, "gateway-autoencoder", "1",
                            "autoencoder ensemble over the telemetry, " + learned);
    }
  }
  core::Status st = g->Start();
  if (!st.ok()) {
    g.reset();
    (void)(*trail)->Close();
    return ReportError("gateway", st);
  }
  if (const core::Status& p = g->priority_status(); !p.ok()) {
    spdlog::warn("gateway: the proxy runs at normal priority (decision.realtime_priority {} "
                 "refused: {}); writes may wait longer on a loaded host",
                 c.decision.realtime_priority, p.message());
  }
  std::string reason = "gateway started on " + c.host;
  if (!refusal.empty()) reason += "; enforce mode refused: " + refusal;
  (*trail)->ModeChange("stopped", gateway::ModeName(c.mode), reason);
  spdlog::info("gateway: {} mode, Modbus {} -> {} (port {}), {} assets{}", gateway::ModeName(c.mode),
               c.modbus.listen.ToString(), c.modbus.upstream.ToString(), g->modbus_port(),
               c.assets.size(),
               c.metrics_enabled ? ", metrics on port " + std::to_string(g->metrics_port()) : "");

  const core::Clock& clock = core::SystemClock::Get();
  const int64_t end = duration_s > 0 ? clock.MonotonicNanos() + int64_t(duration_s) * 1'000'000'000
                                     : 0;
  while (true) {
    timespec tick{0, 200'000'000};
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("gateway: stopping (signal {})", sig);
      break;
    }
    if (end != 0 && clock.MonotonicNanos() >= end) break;
  }
  g->Stop();
  nlohmann::json summary = g->Summary();
  if (!refusal.empty()) summary["enforce_refused"] = refusal;
  g.reset();
  (*trail)->ModeChange(gateway::ModeName(c.mode), "stopped", "gateway stopped");
  core::Status closed = (*trail)->Close();
  for (pipeline::Sink* s : sinks->sinks) (void)s->Flush();
  // The hub or NATS stream takes what is spooled before the run counts as done (or it stays
  // spooled for the next start).
  const bool findings_drained = DrainHub(*sinks, "gateway");
  const bool drained = DrainCheckpoints(*sinks, "gateway") && findings_drained;
  if (o.json) {
    std::printf("%s\n", summary.dump(2).c_str());
  } else {
    std::fprintf(stderr, "gateway: %s\n", summary.dump().c_str());
  }
  if (!closed.ok()) return ReportError("gateway", closed.WithContext("audit log"));
  return drained ? kExitOk : kExitFailure;
}

}  // namespace

RunFn AddGatewayCommand(CLI::App& root) {
  auto o = std::make_shared<GatewayCmdOptions>();
  CLI::App* cmd = root.add_subcommand(
      "gateway",
      "Run the industrial gateway: a Modbus/TCP proxy that checks every actuator write against "
      "rules (the policy engine's language: built-in range, rate and model rules from the config, "
      "plus policy.rules) and a learned actuator-state model (through the inference engine: "
      "deadline, breaker, per-asset fallback), fed the plant state by MQTT "
      "telemetry that is schema-checked and scored for sensor inconsistencies "
      "(docs/gateway.md)");
  cmd->add_option("--config", o->config, "Gateway config file (YAML)")->required();
  cmd->add_option("--mode", o->mode,
                  "Override the config's mode. Enforce mode (here, in the config or on an asset) "
                  "needs the config file, its policy.rules files and model.training signed "
                  "(FILE.minisig, vigil policy "
                  "sign) by a trusted key; otherwise the gateway runs in monitor mode with an "
                  "ALERT and the reason in the audit log")
      ->check(CLI::IsMember({"monitor", "enforce"}));
  cmd->add_option("--trusted-key", o->trusted_keys,
                  "Public key (minisign format) whose signatures make the config and its training "
                  "data trusted in enforce mode; repeatable (default: the trusted_keys of the "
                  "host config " + std::string(core::kDefaultConfigPath) + ")");
  cmd->add_option("--audit", o->audit_dir,
                  "Audit log directory (default: the config's audit_dir, <state_dir>/audit)");
  AddAuditKeyFlags(cmd, &o->audit_key, &o->audit_fsync);
  cmd->add_option("--duration", o->duration, "Stop after this long (90, 90s, 5m, 2h, 1d)");
  AddHubLinkFlags(cmd, &o->hub);
  AddNatsLinkFlags(cmd, &o->nats);
  cmd->add_flag("--check", o->check,
                "Validate the config and learn the models, then exit without serving (does not "
                "connect to the PLC or the MQTT broker); in enforce mode also check the "
                "signatures, exit 1 when enforce mode would be refused");
  cmd->add_flag("--json", o->json, "Print the check or the final counters as JSON on stdout");
  return [o] { return RunGateway(*o); };
}

}  // namespace vigil::app
