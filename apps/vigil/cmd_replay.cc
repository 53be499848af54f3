// vigil replay: streams recorded events through the full pipeline and writes verdicts as JSON
// Lines (OCSF Detection Findings) to the sinks.

#include <unistd.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "agent/durable_output.h"
#include "agent/metrics.h"
#include "agent/replay_runner.h"
#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/outputs.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/metrics.h"
#include "model/loader.h"
#include "pipeline/sink.h"
#include "sensor/replay.h"

namespace vigil::app {
namespace {

struct ReplayCmdOptions {
  std::string config = std::string(core::kDefaultConfigPath);
  std::string metrics_listen;
  std::string source = "adfa-ld";
  std::string data;
  std::string model;
  std::string split = "eval";
  std::vector<std::string> sinks;
  std::string pace = "max";
  std::string backpressure = "block";
  uint32_t sample_every = 10;
  size_t queue_capacity = 16384;
  int workers = 1;
  bool anomalous_only = false;
  bool write_events = false;
  bool json = false;
  std::string host;
  size_t max_error_lines = 20;
  std::string spool_dir;
  std::string spool_sync = "always";
  pipeline::FileSinkOptions file_options;
  HubLinkFlags hub;
  NatsLinkFlags nats;
  std::string audit_dir;  // "" with --audit given: <state_dir>/audit
  std::string audit_key;
  std::string audit_fsync = "batch";
};

core::Result<pipeline::BackpressurePolicy> ParsePolicy(const std::string& s) {
  if (s == "block") return pipeline::BackpressurePolicy::kBlock;
  if (s == "drop-newest") return pipeline::BackpressurePolicy::kDropNewest;
  if (s == "drop-oldest") return pipeline::BackpressurePolicy::kDropOldest;
  if (s == "sample") return pipeline::BackpressurePolicy::kSample;
  return core::InvalidArgument("--backpressure: unknown policy \"" + s + "\"");
}

// Settings come from the config file (or the embedded defaults); flags given on the command line
// win. Only flags the user typed override, so a config can set what the defaults do not.
void ApplyConfig(const core::VigilConfig& c, const CLI::App& cmd, ReplayCmdOptions* o) {
  auto unset = [&](const char* flag) { return cmd.count(flag) == 0; };
  if (unset("--host")) o->host = c.host;
  if (unset("--queue-capacity")) o->queue_capacity = c.pipeline.queue.capacity;
  if (unset("--backpressure")) {
    o->backpressure = std::string(core::BackpressureName(c.pipeline.queue.backpressure));
  }
  if (unset("--sample-every")) o->sample_every = c.pipeline.queue.sample_every;
  if (unset("--workers")) o->workers = static_cast<int>(c.pipeline.workers);
  if (unset("--spool") && c.pipeline.spool.enabled) o->spool_dir = c.pipeline.spool.dir;
  if (unset("--spool-sync")) {
    o->spool_sync = std::string(core::FsyncPolicyName(c.pipeline.spool.fsync));
  }
  if (unset("--sink")) o->sinks = SinkSpecsFromConfig(c, &o->file_options);
  o->hub = HubLinkSettings(c, cmd, o->hub);
  o->nats = NatsLinkSettings(c, cmd, o->nats);
  if (unset("--metrics-listen") && c.source != "<defaults>" && c.metrics.enabled) {
    o->metrics_listen = c.metrics.listen.ToString();
  }
}

int RunReplay(ReplayCmdOptions o, const CLI::App& cmd) {
  auto config = core::LoadConfig(o.config);
  if (!config.has_value()) return ReportError("replay", config.error());
  ApplyConfig(*config, cmd, &o);
  if (auto st = core::InitLogging(config->log.level, config->log.format); !st.ok()) {
    return ReportError("replay", st);
  }
  auto m = model::LoadModel(o.model);
  if (!m.has_value()) return ReportError("replay", m.error());
  // The audit log, when asked for: the model loaded, the run as a mode, one decision record per
  // anomalous verdict.
  std::unique_ptr<AuditTrail> audit;
  if (cmd.count("--audit") > 0) {
    AuditTrailOptions ao;
    ao.dir = o.audit_dir.empty() ? config->state_dir + "/audit" : o.audit_dir;
    ao.key_path = AuditKeyPath(config->state_dir, o.audit_key);
    ao.fsync = o.audit_fsync;
    ao.writer = std::string("vigil replay ") + VIGIL_VERSION;
    auto t = AuditTrail::Open(ao);
    if (!t.has_value()) return ReportError("replay", t.error());
    audit = std::move(t).value();
    audit->ModelChange("loaded", o.model, (*m)->name(), (*m)->version());
    audit->ModeChange("stopped", "monitor", "vigil replay of " + o.data);
  }

  std::string host = o.host;
  if (host.empty()) {
    char buf[256] = {};
    host = gethostname(buf, sizeof(buf) - 1) == 0 ? buf : "localhost";
  }
  std::unique_ptr<sensor::Sensor> base;
  if (o.source == "adfa-ld") {
    auto traces = sensor::ListAdfaSplits(o.data, o.split);
    if (!traces.has_value()) return ReportError("replay", traces.error());
    base = std::make_unique<sensor::AdfaReplaySensor>(std::move(traces).value(), host);
  } else {
    auto s = sensor::JsonlReplaySensor::Open(o.data);
    if (!s.has_value()) return ReportError("replay", s.error());
    base = std::move(s).value();
  }
  auto pace = sensor::ParsePace(o.pace);
  if (!pace.has_value()) return ReportError("replay", pace.error());
  sensor::PacedSensor paced(*base, *pace, core::SystemClock::Get(), sensor::RealSleepUntil);

  auto outputs = MakeOutputs(o.sinks.empty() ? std::vector<std::string>{"stdout"} : o.sinks,
                             o.file_options, o.hub, o.nats, host, config->state_dir,
                             core::Registry::Get());
  if (!outputs.has_value()) return ReportError("replay", outputs.error().WithContext("--sink"));
  std::vector<pipeline::Sink*> sinks = outputs->sinks;
  // With a spool, verdicts are spooled before the sinks see them and acknowledged once flushed;
  // lines a crashed run never delivered are handed to the sinks first.
  std::unique_ptr<agent::DurableOutput> durable;
  if (!o.spool_dir.empty()) {
    pipeline::SpoolOptions so;
    so.sync = SyncModeOf(o.spool_sync);
    pipeline::RecoveryReport report;
    auto d = agent::DurableOutput::Open(o.spool_dir, so, sinks, &report);
    if (!d.has_value()) return ReportError("replay", d.error());
    if (report.records_replayed > 0 || !report.clean()) {
      std::fprintf(stderr,
                   "vigil replay: spool %s: re-delivered %llu unacknowledged verdicts; "
                   "%zu damaged regions skipped (%llu torn-tail bytes, %llu corrupt records)\n",
                   o.spool_dir.c_str(), static_cast<unsigned long long>(report.records_replayed),
                   report.damage.size(), static_cast<unsigned long long>(report.torn_tail_bytes),
                   static_cast<unsigned long long>(report.corrupt_records));
    }
    durable = std::move(d).value();
    sinks = {durable.get()};
  }
  auto policy = ParsePolicy(o.backpressure);
  if (!policy.has_value()) return ReportError("replay", policy.error());

  agent::ReplayOptions ro;
  ro.queue_capacity = o.queue_capacity;
  ro.source.policy = *policy;
  ro.source.sample_one_in = o.sample_every;
  ro.workers = o.workers;
  ro.emit_all = !o.anomalous_only;
  ro.emit_events = o.write_events;
  ro.host = host;
  core::Registry& registry = core::Registry::Get();
  auto latency = registry.GetHistogram("vigil_event_latency_seconds",
                                       "Time from queue entry to scored, sampled 1 in 64 events");
  if (!latency.has_value()) return ReportError("replay", latency.error());
  ro.latency = *latency;
  if (audit) {
    ro.on_verdict = [&audit](const core::Verdict& v) {
      if (v.anomalous) audit->Alert(v);
    };
  }
  agent::ReplayRunner runner(**m, sinks, ro, core::SystemClock::Get());
  std::vector<core::Registry::CallbackHandle> handles;
  std::unique_ptr<core::MetricsServer> server;
  if (!o.metrics_listen.empty()) {
    auto addr = core::ParseHostPort(o.metrics_listen);
    if (!addr.has_value()) return ReportError("replay", addr.error().WithContext("--metrics-listen"));
    auto st = agent::RegisterReplayMetrics(registry, runner, &handles);
    if (!st.ok()) return ReportError("replay", st);
    server = std::make_unique<core::MetricsServer>(registry, [&runner] {
      core::HealthReport h;
      const agent::ReplayStats s = runner.Live();
      h.detail = {{"events_read", s.read}, {"queue_depth", s.queue.depth}};
      return h;
    });
    if (auto st2 = server->Start(addr->host, addr->port); !st2.ok()) {
      return ReportError("replay", st2);
    }
    std::fprintf(stderr, "vigil replay: metrics on http://%s:%u/metrics\n", addr->host.c_str(),
                 server->port());
  }
  size_t errors_shown = 0;
  auto stats = runner.Run(paced, [&](const core::Status& st) {
    if (errors_shown++ < o.max_error_lines) {
      std::fprintf(stderr, "vigil replay: skipped bad input: %s\n", st.message().c_str());
    }
  });
  // The hub takes what is spooled before the run counts as done (or it stays for the next run).
  const bool hub_drained = DrainHub(*outputs, "replay");
  if (server) server->Stop();
  if (audit) {
    audit->ModeChange("monitor", "stopped", stats.has_value() ? "replay finished" : "replay failed");
    if (auto st = audit->Close(); !st.ok()) return ReportError("replay", st);
    std::fprintf(stderr, "vigil replay: audit log %s: %llu decision records\n",
                 audit->dir().c_str(), static_cast<unsigned long long>(audit->decisions()));
  }
  if (!stats.has_value()) return ReportError("replay", stats.error());
  const uint64_t drops = stats->queue.dropped_full + stats->queue.evicted + stats->queue.sampled_out;
  nlohmann::json j = {
      {"events_read", stats->read},
      {"bad_input", stats->read_errors},
      {"rejected", stats->validation.rejected},
      {"dropped", drops},
      {"scored", stats->scored},
      {"streams", stats->streams},
      {"verdicts_written", stats->verdicts},
      {"events_written", stats->events_written},
      {"anomalous", stats->anomalous},
      {"seconds", stats->seconds},
      {"events_per_second", stats->seconds > 0 ? stats->read / stats->seconds : 0.0}};
  if (o.json) {
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr,
                 "vigil replay: %llu events read, %llu scored, %llu streams, %llu anomalous, "
                 "%llu verdicts written; bad input %llu, rejected %llu, dropped %llu; "
                 "%.2f s (%.0f events/s)\n",
                 static_cast<unsigned long long>(stats->read),
                 static_cast<unsigned long long>(stats->scored),
                 static_cast<unsigned long long>(stats->streams),
                 static_cast<unsigned long long>(stats->anomalous),
                 static_cast<unsigned long long>(stats->verdicts),
                 static_cast<unsigned long long>(stats->read_errors),
                 static_cast<unsigned long long>(stats->validation.rejected),
                 static_cast<unsigned long long>(drops), stats->seconds,
                 j["events_per_second"].get<double>());
  }
  if (stats->read_errors > errors_shown && errors_shown >= o.max_error_lines) {
    std::fprintf(stderr, "vigil replay: %llu more bad-input messages not shown\n",
                 static_cast<unsigned long long>(stats->read_errors - o.max_error_lines));
  }
  // Bad input was skipped and reported: the run completed, but say so in the exit code.
  if (stats->read_errors > 0 || stats->validation.rejected > 0) return kExitUsage;
  return hub_drained ? kExitOk : kExitFailure;
}

}  // namespace

RunFn AddReplayCommand(CLI::App& root) {
  auto o = std::make_shared<ReplayCmdOptions>();
  CLI::App* cmd = root.add_subcommand(
      "replay", "Stream recorded events through the pipeline and write verdicts as JSON Lines");
  cmd->add_option("--config", o->config,
                  "YAML config (host, pipeline, sinks, log, metrics); missing default = "
                  "embedded defaults; flags override it")
      ->capture_default_str();
  cmd->add_option("--metrics-listen", o->metrics_listen,
                  "Serve /metrics and /healthz on HOST:PORT while replaying (port 0: any free)");
  cmd->add_option("--source", o->source, "adfa-ld (dataset folder) or jsonl (Vigil event file)")
      ->capture_default_str()
      ->check(CLI::IsMember({"adfa-ld", "jsonl"}));
  cmd->add_option("--data", o->data, "ADFA-LD root folder, or the JSONL file ('-' for stdin)")
      ->required();
  cmd->add_option("--model", o->model, "Model file written by 'vigil train'")->required();
  cmd->add_option("--split", o->split,
                  "adfa-ld only: training, validation, attack, eval (validation+attack) or all")
      ->capture_default_str();
  cmd->add_option("--sink", o->sinks,
                  "Where verdicts go: stdout, file:PATH (rotated by size), null, hub:URL "
                  "(a Vigil hub, with --hub-token-file) or nats:nats://HOST:PORT (a NATS "
                  "JetStream stream that hubs consume); see docs/hub.md; repeatable "
                  "(default from config: its sinks, hub and nats sinks included, whose settings "
                  "the --hub-* and --nats-* flags override)");
  AddHubLinkFlags(cmd, &o->hub);
  AddNatsLinkFlags(cmd, &o->nats);
  cmd->add_option("--pace", o->pace,
                  "max (as fast as possible), recorded[:SPEED] (follow time_ns) or EVENTS_PER_SEC")
      ->capture_default_str();
  cmd->add_option("--backpressure", o->backpressure,
                  "When the queue is full: block, drop-newest, drop-oldest or sample")
      ->capture_default_str()
      ->check(CLI::IsMember({"block", "drop-newest", "drop-oldest", "sample"}));
  cmd->add_option("--sample-every", o->sample_every, "sample: admit 1 in N above half full")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  cmd->add_option("--queue-capacity", o->queue_capacity, "Events each worker's queue holds")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  cmd->add_option("--workers", o->workers, "Scoring threads (events sharded by stream)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--host", o->host, "Host name stamped on events (default: this host)");
  cmd->add_option("--spool", o->spool_dir,
                  "Spool verdicts durably in DIR before the sinks; unacknowledged ones are "
                  "re-delivered after a crash");
  cmd->add_option("--spool-sync", o->spool_sync, "Spool fsync policy: always, batch or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "batch", "never"}));
  cmd->add_option("--audit", o->audit_dir,
                  "Write the run to the audit log in DIR (without DIR: <state_dir>/audit): the "
                  "model loaded, start and stop, one decision record per anomalous verdict")
      ->expected(0, 1);
  AddAuditKeyFlags(cmd, &o->audit_key, &o->audit_fsync);
  cmd->add_flag("--anomalous-only", o->anomalous_only, "Write only anomalous verdicts");
  cmd->add_flag("--write-events", o->write_events,
                "Also write the input's typed events (exec, exit, fork, open, connect, ...) to the "
                "sinks as OCSF activity events (docs/event-schema.md)");
  cmd->add_flag("--json", o->json, "Print the run summary as JSON (on stderr)");
  return [o, cmd] { return RunReplay(*o, *cmd); };
}

}  // namespace vigil::app
