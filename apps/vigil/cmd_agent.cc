// vigil agent: watches this host through the eBPF sensor, learns per-program baselines, then
// scores live behaviour and reports anomalies with explanations.
//
// Start-up is an ordered list of steps; each acquires something that the destructors release in
// reverse order on the way out: config -> logging -> sinks -> audit log -> process tree ->
// policy and enforcement (ledger, action worker) -> kernel sensor -> metrics server -> signal
// thread -> run.

#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/action_bridge.h"
#include "agent/cert_renewal.h"
#include "agent/durable_output.h"
#include "agent/fleet_link.h"
#include "agent/host_addresses.h"
#include "agent/hub_escalations.h"
#include "agent/live_agent.h"
#include "agent/stream_budget.h"
#include "apps/vigil/agent_gate.h"
#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/govern_cli.h"
#include "audit/payloads.h"
#include "model/model_file.h"
#include "model/sequence_model.h"
#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/registry.h"
#include "apps/vigil/outputs.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/metrics.h"
#include "agent/policy_input.h"
#include "enforce/enforce.h"
#include "enrich/process_tree.h"
#include "policy/decision_json.h"
#include "policy/default_rules.h"
#include "policy/engine.h"
#include "govern/attest.h"
#include "govern/keys.h"
#include "govern/measure.h"
#include "govern/trust.h"
#include "sensor/ebpf_sensor.h"

namespace vigil::app {
namespace {

struct AgentCmdOptions {
  std::string config = std::string(core::kDefaultConfigPath);
  std::string learn;
  std::string duration;
  std::vector<std::string> sinks;
  std::string baseline;
  std::string state_dir;
  std::string metrics_listen;
  bool no_metrics = false;
  bool relearn = false;
  bool quiet = false;
  std::string audit_dir;
  std::string audit_key;
  std::string audit_fsync = "batch";
  std::string mode;
  HubLinkFlags hub;
  NatsLinkFlags nats;
};

uint32_t TypedMask(const std::vector<std::string>& events) {
  uint32_t mask = 0;
  for (const std::string& e : events) {
    if (e == "exec") mask |= sensor::kTypedExec;
    if (e == "fork") mask |= sensor::kTypedFork;
    if (e == "exit") mask |= sensor::kTypedExit;
    if (e == "execve") mask |= sensor::kTypedExecve;
    if (e == "open") mask |= sensor::kTypedOpen;
    if (e == "file_mod") mask |= sensor::kTypedFileMod;
    if (e == "net") mask |= sensor::kTypedNet;
    if (e == "cred") mask |= sensor::kTypedCred;
    if (e == "ptrace") mask |= sensor::kTypedPtrace;
    if (e == "mount") mask |= sensor::kTypedMount;
  }
  return mask;
}

sensor::EbpfOptions SensorOptions(const core::AgentConfig& a) {
  sensor::EbpfOptions o;
  o.ring_buffer_bytes = a.ring_buffer_bytes;
  o.mount_tracefs = a.mount_tracefs;
  o.syscall_stream = a.syscall_stream != core::SyscallStreamMode::kOff;
  o.syscall_runs = true;  // the per-program models read call sequences: one event per run
  // Fork, exec and exit keep the process tree right, so they are always on.
  o.typed_events = TypedMask(a.events) | sensor::kTypedExec | sensor::kTypedFork |
                   sensor::kTypedExit;
  o.exclude_comms = a.filters.exclude_comms;
  o.include_comms = a.filters.include_comms;
  o.exclude_uids = a.filters.exclude_uids;
  o.include_uids = a.filters.include_uids;
  o.exclude_cgroups = a.filters.exclude_cgroups;
  o.include_cgroups = a.filters.include_cgroups;
  return o;
}

// Applies the filters and event set of a (re)loaded config to the running sensor (the syscall
// stream through its cycler, which owns it).
core::Status ApplyRuntimeConfig(sensor::EbpfSensor& s, agent::StreamDutyCycler& stream,
                                const core::AgentConfig& a) {
  const sensor::EbpfOptions o = SensorOptions(a);
  VIGIL_RETURN_IF_ERROR(s.ClearFilters());
  for (const auto& c : o.exclude_comms) VIGIL_RETURN_IF_ERROR(s.AddExcludeComm(c));
  for (const auto& c : o.include_comms) VIGIL_RETURN_IF_ERROR(s.AddIncludeComm(c));
  for (uint32_t u : o.exclude_uids) VIGIL_RETURN_IF_ERROR(s.AddExcludeUid(u));
  for (uint32_t u : o.include_uids) VIGIL_RETURN_IF_ERROR(s.AddIncludeUid(u));
  for (uint64_t g : o.exclude_cgroups) VIGIL_RETURN_IF_ERROR(s.AddExcludeCgroup(g));
  for (uint64_t g : o.include_cgroups) VIGIL_RETURN_IF_ERROR(s.AddIncludeCgroup(g));
  VIGIL_RETURN_IF_ERROR(stream.SetMode(a.syscall_stream, a.syscall_stream_budget));
  return s.SetTypedEvents(o.typed_events);
}

double ResidentMegabytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

std::string UserName(const enrich::ProcessTree& tree, uint32_t pid, uint32_t uid) {
  if (auto info = tree.Lookup(pid); info && !info->user.empty()) return info->user;
  return "uid " + std::to_string(uid);
}

// Stop and reload requests that reached a thread which did not block the signals: threads that
// libraries (OpenBLAS, libtorch) start before main() runs. The handler only records them; the
// signal thread acts on them.
std::atomic<bool> g_stop_requested{false};
std::atomic<bool> g_reload_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);
// An eventfd that wakes the signal thread (it blocks until a signal, a note or the end): written
// by the handler after recording a request, by the live agent after a note, and at the end.
std::atomic<int> g_signal_wake_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

void WakeSignalThread() {
  const int fd = g_signal_wake_fd.load();
  if (fd < 0) return;
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof(one));  // async-signal-safe
  (void)n;  // EAGAIN: a wake-up is already pending
}

extern "C" void RecordSignal(int sig) {
  const int saved = errno;
  if (sig == SIGHUP) {
    g_reload_requested.store(true);
  } else {
    g_stop_requested.store(true);
  }
  WakeSignalThread();
  errno = saved;
}

// What enforce mode needs before it is entered, and what stopped it (docs/attestation.md).
struct EnforceGate {
  bool wanted = false;                     // mode: enforce in the config
  bool require_attestation = false;        // attestation.require
  std::string refusal;                     // why the agent stays in monitor mode (first reason)
  std::vector<govern::PublicKey> trusted;  // trusted_keys
  std::set<govern::Sha256Digest> allowed;  // digests the agent itself loaded and verified
  std::unique_ptr<govern::Measurer> measurer;  // set when a TPM is configured and reachable
  // The hub sink's enforce_requires_hub: enforce mode also waits for the hub to allow it (the
  // hub's attestation check of this host); hub_allowed and hub_reason are its last answer.
  bool needs_hub = false;
  bool hub_allowed = false;
  std::string hub_reason = "no answer from the hub yet";

  void Refuse(const std::string& why) {
    if (wanted && refusal.empty()) refusal = why;
  }
};

// The baseline at `path`, read once into `bytes` (what enforce mode checks and measures).
core::Result<std::shared_ptr<const model::SequenceModel>> LoadBaseline(const std::string& path,
                                                                       std::string* bytes) {
  auto read = core::ReadFile(path, model::kMaxModelFileBytes);
  if (!read.has_value()) return read.error().WithContext("model file");
  *bytes = std::move(read).value();
  VIGIL_ASSIGN_OR_RETURN(const model::ModelFile file, model::DecodeModelFile(*bytes, path));
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<model::SequenceModel> m,
                         model::SequenceModel::FromFile(file, path));
  return std::shared_ptr<const model::SequenceModel>(std::move(m));
}

// The bytes the policy engine parsed `path` from (null when it did not read it).
const std::string* SourceOf(const policy::PolicySnapshot& snap, const std::string& path) {
  for (const auto& [name, bytes] : snap.sources) {
    if (name == path) return &bytes;
  }
  return nullptr;
}

// Enforce mode's policy precondition: every file the policy engine read (the configured files,
// a bundle manifest included, and the rules files the manifest names) carries a signature by a
// trusted key, checked as the bytes the engine parsed (PolicySnapshot::sources), not a second
// read. The embedded default rules are part of the vigil binary and are not checked. On
// refusal, a policy-change record "refused" names the file and the reason, and the reason is
// returned ("" when every file is trusted).
std::string CheckPolicyTrust(const EnforceGate& gate, const std::vector<std::string>& configured,
                             const policy::PolicySnapshot& snap, AuditTrail* audit) {
  if (configured.empty() || gate.trusted.empty()) return "";  // (no keys: refused already)
  std::vector<std::string> files = configured;
  files.insert(files.end(), snap.files.begin(), snap.files.end());
  const govern::TrustChecks t = govern::CheckSignedArtifacts(
      files, gate.trusted, [&snap](const std::string& path) { return SourceOf(snap, path); });
  if (t.trusted) return "";
  audit->PolicyChange("refused", snap.version, snap.generation, {t.path},
                      t.first.outcome + ": " + t.first.reason);
  return "policy " + t.first.outcome + ": " + t.first.reason;
}

// Measures every policy file the engine read from disk (kind "policy"; the bytes it parsed) when
// a TPM is configured; the digests of trusted files join the allowlist of the local quote. (The
// embedded rules are part of the measured binary.)
void MeasurePolicy(EnforceGate* gate, const std::vector<std::string>& configured,
                   const policy::PolicySnapshot& snap, bool trusted) {
  if (!gate->measurer || configured.empty()) return;
  std::vector<std::string> files;
  for (const auto* list : {&configured, &snap.files}) {
    for (const std::string& f : *list) {
      if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    }
  }
  for (const std::string& f : files) {
    const std::string* bytes = SourceOf(snap, f);
    auto hex = bytes != nullptr ? core::Result<std::string>(audit::Sha256Hex(*bytes))
                                : audit::FileSha256(f);
    govern::AttestEvent e;
    e.kind = "policy";
    e.name = f;
    core::Status st = hex.has_value() ? core::Status::Ok() : hex.error();
    if (st.ok()) {
      e.digest = *govern::DigestOfHex(*hex);
      st = gate->measurer->Measure(e);
    }
    if (!st.ok()) {
      spdlog::error("attestation: measuring {}: {}", f, st.message());
      if (gate->require_attestation) gate->Refuse("attestation: " + st.message());
    } else if (trusted) {
      gate->allowed.insert(e.digest);
    }
  }
}

// A loaded or reloaded policy's part of enforce mode's precondition: its trust check (when
// enforce mode is wanted) and its measurement. An untrusted policy refuses enforce mode, with an
// ALERT. Returns why it is untrusted ("" when it is trusted or not checked).
std::string VetPolicy(EnforceGate* gate, const std::vector<std::string>& configured,
                      const policy::PolicySnapshot& snap, AuditTrail* audit) {
  const std::string why = gate->wanted ? CheckPolicyTrust(*gate, configured, snap, audit) : "";
  MeasurePolicy(gate, configured, snap, why.empty());
  if (!why.empty()) {
    gate->Refuse(why);
    spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", why);
  }
  return why;
}

// Measures a model the agent put in force (kind "model": the SHA-256 of the bytes it loaded) when
// a TPM is configured; a trusted one joins the allowlist of the local quote.
void MeasureModel(EnforceGate* gate, const std::string& path, const govern::Sha256Digest& digest,
                  bool trusted) {
  if (!gate->measurer) return;
  govern::AttestEvent e;
  e.kind = "model";
  e.name = path;
  e.digest = digest;
  if (core::Status st = gate->measurer->Measure(e); !st.ok()) {
    spdlog::error("attestation: measuring {}: {}", path, st.message());
    if (gate->require_attestation) gate->Refuse("attestation: " + st.message());
  } else if (trusted) {
    gate->allowed.insert(digest);
  }
}

// The start measurement: the vigil binary that is running.
core::Result<govern::AttestEvent> BinaryEvent() {
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return core::Unavailable("/proc/self/exe: " + ec.message());
  VIGIL_ASSIGN_OR_RETURN(const std::string hex, audit::FileSha256("/proc/self/exe"));
  govern::AttestEvent e;
  e.kind = "agent-start";
  e.name = exe;
  e.digest = *govern::DigestOfHex(hex);
  return e;
}

// Connects to the TPM when one is configured, resets the PCR and measures the binary.
void StartAttestation(const core::VigilConfig& c, EnforceGate* gate) {
  if (c.attestation.tcti.empty()) {
    spdlog::info("attestation: no TPM configured (attestation.tcti); model and policy loads are "
                 "not measured");
    if (gate->require_attestation) {
      gate->Refuse("attestation.require is set but no TPM is configured (attestation.tcti)");
    }
    return;
  }
  govern::MeasureOptions mo;
  mo.tcti = c.attestation.tcti;
  mo.pcr = c.attestation.pcr;
  mo.events_path = c.attestation.events;
  core::Status st;
  auto m = govern::Measurer::Open(mo);
  auto start = BinaryEvent();
  if (!m.has_value()) {
    st = m.error();
  } else if (!start.has_value()) {
    st = start.error();
  } else {
    st = (*m)->Restart(*start);
  }
  if (!st.ok()) {
    spdlog::error("attestation: {}; loads are not measured", st.message());
    if (gate->require_attestation) gate->Refuse("attestation: " + st.message());
    return;
  }
  gate->allowed.insert(start->digest);
  gate->measurer = std::move(m).value();
  spdlog::info("attestation: PCR {} reset and extended with {} (sha256 {}); events in {}",
               mo.pcr, start->name, govern::HexOf(start->digest), mo.events_path);
}

int RunAgent(AgentCmdOptions o, const CLI::App& cmd) {
  // 0. Block the stop and reload signals before any thread of ours exists (the metrics server,
  // the workers and the sensor start threads), so that the signal thread below takes them. A
  // library thread started before main() keeps them unblocked: the handler keeps the default
  // action (death) from happening there and hands the request to the signal thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // The signal thread blocks on these two (no periodic wake-ups): the signals sent to the process
  // or to it, and the wake-ups of WakeSignalThread.
  const int signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (signal_fd < 0 || wake_fd < 0) {
    const int e = errno;
    if (signal_fd >= 0) close(signal_fd);
    if (wake_fd >= 0) close(wake_fd);
    return ReportError("agent", core::Internal(std::string("creating the signal thread's ") +
                                               (signal_fd < 0 ? "signalfd" : "eventfd") +
                                               " failed: " + std::strerror(e)));
  }
  g_signal_wake_fd.store(wake_fd);
  struct FdsClose {
    int a, b;
    ~FdsClose() {
      g_signal_wake_fd.store(-1);
      close(a);
      close(b);
    }
  } fds_close{signal_fd, wake_fd};
  struct sigaction record {};
  record.sa_handler = RecordSignal;
  sigemptyset(&record.sa_mask);
  record.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &record, nullptr);
  agent::KeepLargeBlocksOutOfTheHeap();  // before libbpf, the queues and the sensor allocate

  // 1. Config and logging.
  auto config = core::LoadConfig(o.config);
  if (!config.has_value()) return ReportError("agent", config.error());
  core::VigilConfig& c = *config;
  if (!o.state_dir.empty()) {
    // Paths the config derived from its own state_dir follow the one given here.
    if (c.attestation.events == c.state_dir + "/attest/events.json") {
      c.attestation.events = o.state_dir + "/attest/events.json";
    }
    if (c.trusted_keys == std::vector<std::string>{c.state_dir + "/keys/vigil.pub"}) {
      c.trusted_keys = {o.state_dir + "/keys/vigil.pub"};
    }
    c.state_dir = o.state_dir;
    if (cmd.count("--baseline") == 0) c.agent.baseline = o.state_dir + "/models/baseline.vgm";
  }
  if (!o.learn.empty()) {
    auto s = core::ParseDurationSeconds(o.learn);
    if (!s.has_value()) return ReportError("agent", s.error().WithContext("--learn"));
    c.agent.learn_seconds = *s;
  }
  uint64_t duration_s = 0;
  if (!o.duration.empty()) {
    auto s = core::ParseDurationSeconds(o.duration);
    if (!s.has_value()) return ReportError("agent", s.error().WithContext("--duration"));
    duration_s = *s;
  }
  if (!o.baseline.empty()) c.agent.baseline = o.baseline;
  if (!o.mode.empty()) {
    c.mode = o.mode == "enforce" ? core::AgentMode::kEnforce : core::AgentMode::kMonitor;
  }
  if (auto st = core::InitLogging(c.log.level, c.log.format); !st.ok()) {
    return ReportError("agent", st);
  }

  // 2. The kernel side first: without it nothing else is worth starting.
  if (geteuid() != 0) {
    return ReportError("agent", core::FailedPrecondition(
                                    "the eBPF sensor needs root (CAP_BPF, CAP_PERFMON and "
                                    "CAP_SYS_RESOURCE or CAP_SYS_ADMIN); run it as root or "
                                    "through deploy/systemd/vigil-agent.service"));
  }

  // 3. Sinks (optionally behind the durable spool).
  pipeline::FileSinkOptions file_options;
  std::vector<std::string> specs = o.sinks;
  if (specs.empty()) specs = SinkSpecsFromConfig(c, &file_options);
  auto outputs = MakeOutputs(specs, file_options, HubLinkSettings(c, cmd, o.hub),
                             NatsLinkSettings(c, cmd, o.nats), c.host, c.state_dir,
                             core::Registry::Get());
  if (!outputs.has_value()) return ReportError("agent", outputs.error().WithContext("--sink"));
  std::vector<pipeline::Sink*> sinks = outputs->sinks;
  std::unique_ptr<agent::DurableOutput> durable;
  if (c.pipeline.spool.enabled) {
    pipeline::SpoolOptions so;
    so.segment_bytes = c.pipeline.spool.segment_bytes;
    so.sync = SyncModeOf(c.pipeline.spool.fsync);
    auto d = agent::DurableOutput::Open(c.pipeline.spool.dir, so, sinks, nullptr);
    if (!d.has_value()) return ReportError("agent", d.error());
    durable = std::move(d).value();
    sinks = {durable.get()};
  }

  // 3b. The audit log: mode changes, baselines loaded or learned, one decision per alert.
  AuditTrailOptions audit_options;
  audit_options.dir = o.audit_dir.empty() ? c.state_dir + "/audit" : o.audit_dir;
  audit_options.key_path = AuditKeyPath(c.state_dir, o.audit_key);
  audit_options.fsync = o.audit_fsync;
  audit_options.writer = std::string("vigil agent ") + VIGIL_VERSION;
  // Each signed checkpoint also goes to the hub (its hub and nats sinks): a copy off the host.
  audit_options.on_checkpoint = [&outputs](const audit::CheckpointNotice& n) {
    OfferCheckpoint(*outputs, n);
  };
  auto opened_audit = AuditTrail::Open(audit_options);
  if (!opened_audit.has_value()) return ReportError("agent", opened_audit.error());
  std::unique_ptr<AuditTrail> audit = std::move(opened_audit).value();
  if (!audit->open_report().previous_clean) {
    spdlog::warn("audit log {}: the previous writer did not close it ({} torn bytes cut after "
                 "record {}); the chain continues",
                 audit->dir(), audit->open_report().torn_bytes, audit->open_report().last_seq);
  }
  std::mutex mode_mu;
  std::string mode = "learning";
  audit->ModeChange("stopped", mode, "agent started on " + c.host);

  // 3c. Enforce mode's preconditions: trusted keys, a verified baseline, a measured start.
  EnforceGate gate;
  gate.wanted = c.mode == core::AgentMode::kEnforce;
  gate.require_attestation = gate.wanted && c.attestation.require;
  if (gate.wanted) {
    auto keys = govern::LoadTrustedKeys(c.trusted_keys);
    if (keys.has_value()) {
      gate.trusted = std::move(keys).value();
    } else {
      gate.Refuse(keys.error().message());
    }
  }
  StartAttestation(c, &gate);
  std::error_code exists_ec;
  const bool baseline_reused = !o.relearn && std::filesystem::exists(c.agent.baseline, exists_ec);
  // A reused baseline is read once: the bytes checked and measured are the bytes loaded.
  std::string baseline_bytes;
  std::shared_ptr<const model::SequenceModel> baseline;
  if (baseline_reused) {
    auto loaded = LoadBaseline(c.agent.baseline, &baseline_bytes);
    if (!loaded.has_value()) return ReportError("agent", loaded.error().WithContext("baseline"));
    baseline = std::move(loaded).value();
  }
  if (gate.wanted && baseline_reused) {
    const govern::TrustCheck t =
        govern::CheckSignedBytes(c.agent.baseline, baseline_bytes, gate.trusted);
    if (t.trusted) {
      gate.allowed.insert(*govern::DigestOfHex(t.sha256));
      spdlog::info("enforce: baseline {} signed by trusted key {}", c.agent.baseline, t.key_id);
    } else if (!gate.trusted.empty()) {  // (without keys the refusal says so already)
      audit->ModelChange("refused", c.agent.baseline, "host-baseline", "1",
                         t.outcome + ": " + t.reason);
      gate.Refuse("model " + t.outcome + ": " + t.reason);
    }
  }
  if (!gate.refusal.empty()) {
    spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", gate.refusal);
  }

  // 4. Process tree from a /proc snapshot; kept current from fork/exec/exit events.
  enrich::ProcessTreeOptions tree_options;
  auto tree = enrich::ProcessTree::Create(tree_options, &core::SystemClock::Get());
  if (!tree.has_value()) return ReportError("agent", tree.error());
  if (auto st = (*tree)->LoadSnapshot(); !st.ok()) {
    spdlog::warn("process tree: /proc snapshot failed ({}); learning processes from events only",
                 st.message());
  }

  // 4b. The policy: every typed event is decided on. Decisions enforce only while the agent is
  // in enforce mode (its models verified) and the policy, the rule and the rollout stage allow
  // it; until then they are recorded as monitor-mode decisions (would-have-enforced counted).
  std::mutex print_mu;
  std::unique_ptr<policy::PolicyEngine> policy_engine;
  std::unique_ptr<enforce::Enforcer> enforcer;
  std::unique_ptr<agent::ActionBridge> actions;
  std::unique_ptr<agent::HubEscalations> hub_escalations;
  if (c.policy.enabled) {
    policy::PolicyOptions po;
    po.files = c.policy.files;
    if (po.files.empty()) {
      po.embedded_yaml = std::string(policy::DefaultRules());
      po.embedded_name = std::string(policy::kDefaultRulesName);
    }
    policy::ParseStage(c.policy.stage, &po.stage);
    policy::ParseAssetClass(c.policy.asset_class, &po.default_class);
    policy::ParseMode(c.policy.mode, &po.mode);
    auto pe = policy::PolicyEngine::Create(std::move(po), &core::Registry::Get());
    if (!pe.has_value()) return ReportError("agent", pe.error().WithContext("policy"));
    policy_engine = std::move(pe).value();
    policy_engine->SetEnforcementAllowed(false);  // until the agent enters enforce mode
    // Enforcement: the ledger, and the worker that carries enforcing decisions out off the
    // event path. Without the ledger the agent cannot act and stays in monitor mode.
    enforce::EnforcerOptions eo;
    eo.state_dir = c.state_dir;
    eo.actor = "vigil agent";
    auto opened_enforcer = enforce::Enforcer::Open(eo, core::SystemClock::Get(),
                                                   core::Registry::Get());
    if (opened_enforcer.has_value()) {
      enforcer = std::move(opened_enforcer).value();
      agent::ActionBridgeOptions bo;
      bo.queue_capacity = c.policy.enforcement_queue;
      bo.audit = [&audit](std::string_view type, nlohmann::json payload) -> core::Status {
        audit::RecordType t;
        if (!audit::ParseRecordType(type, &t)) {
          return core::DataLoss("enforcement audit outbox: unknown record type \"" +
                                std::string(type) + "\"");
        }
        audit->Append(t, std::move(payload));
        return core::Status::Ok();
      };
      bo.on_result = [&, quiet = o.quiet](const enforce::ActionRequest& r,
                                          const core::Result<enforce::Outcome>& out) {
        if (quiet) return;
        std::string what;
        if (!out.has_value()) {
          what = "refused: " + out.error().message();
        } else {
          what = "action " + std::to_string(out->id) + " " +
                 std::string(enforce::StateName(out->state)) + ": " + out->detail;
        }
        std::lock_guard<std::mutex> lock(print_mu);
        std::fprintf(stderr, "ENFORCE %s %s (rule %s): %s\n",
                     std::string(enforce::ActionKindName(r.action)).c_str(),
                     r.target.ToString().c_str(), r.rule.c_str(), what.c_str());
      };
      auto bridge = agent::ActionBridge::Create(*enforcer, std::move(bo), core::Registry::Get());
      if (bridge.has_value()) {
        actions = std::move(bridge).value();
        actions->Start();
        if (outputs->hub != nullptr) {
          // Escalations are decided by people at the hub of the hub sink (docs/hub.md).
          agent::HubEscalationOptions ho;
          ho.link = outputs->hub_link;
          ho.on_answer = [&, quiet = o.quiet](const enforce::Escalation& e,
                                              std::string_view outcome, std::string_view by,
                                              const core::Result<enforce::Outcome>& done) {
            if (quiet) return;
            std::lock_guard<std::mutex> lock(print_mu);
            std::fprintf(stderr, "ESCALATION %llu %.*s (%.*s): %s\n",
                         static_cast<unsigned long long>(e.id), static_cast<int>(outcome.size()),
                         outcome.data(), static_cast<int>(by.size()), by.data(),
                         done.has_value() ? done->detail.c_str() : done.error().message().c_str());
          };
          auto link = agent::HubEscalations::Create(*enforcer, std::move(ho),
                                                    core::SystemClock::Get(), core::Registry::Get());
          if (!link.has_value()) return ReportError("agent", link.error());
          hub_escalations = std::move(link).value();
          hub_escalations->Start();
          spdlog::info("escalations are decided at the hub {}", outputs->hub_link.url);
        }
      } else {
        gate.Refuse("enforcement: " + bridge.error().message());
      }
    } else {
      spdlog::error("enforcement ledger: {}; no action can be carried out",
                    opened_enforcer.error().message());
      gate.Refuse("enforcement ledger: " + opened_enforcer.error().message());
    }
    const auto snap = policy_engine->Current();
    for (const policy::LoadWarning& w : snap->rules.warnings()) {
      spdlog::debug("policy: {}", w.ToString());
    }
    const std::string summary = std::to_string(snap->rules.enabled_count()) + " of " +
                                std::to_string(snap->rules.rules().size()) + " rules enabled";
    spdlog::info("policy {} ({}): {}; stage {}", snap->version,
                 c.policy.files.empty() ? std::string(policy::kDefaultRulesName)
                                        : std::to_string(c.policy.files.size()) + " file(s)",
                 summary, policy::StageName(snap->stage));
    audit->PolicyChange("loaded", snap->version, snap->generation, snap->files, summary);
    const std::string why = VetPolicy(&gate, c.policy.files, *snap, audit.get());
    if (why.empty() && gate.wanted && !c.policy.files.empty() && !gate.trusted.empty()) {
      spdlog::info("enforce: policy files signed by trusted keys");
    }
  }

  // 4c. The fanotify gate (agent.gate): execs of files on the configured paths wait for the
  // policy; it denies only while the agent is in enforce mode.
  // Where the hub installs the gate models it rolls out (the hub sink's model_file): it is
  // agent.gate.model, which may be left out for it, and the gate may start before the file is
  // there (without a model until the hub rolls one out).
  std::string hub_model_file;
  if (outputs->hub != nullptr) {
    for (const core::SinkConfig& s : c.sinks) {
      if (s.type == core::SinkType::kHub) hub_model_file = s.hub.model_file;
    }
  }
  if (!c.agent.gate.watch.empty() && c.agent.gate.model.empty()) {
    c.agent.gate.model = hub_model_file;
  }
  std::unique_ptr<AgentGate> agent_gate;
  if (!c.agent.gate.watch.empty()) {
    auto started = AgentGate::Start(
        c, policy_engine ? policy_engine->Current() : nullptr, audit.get(), nullptr,
        /*model_from_hub=*/!hub_model_file.empty() && hub_model_file == c.agent.gate.model);
    if (!started.has_value()) return ReportError("agent", started.error());
    agent_gate = std::move(started).value();
    const std::string why = gate.wanted ? agent_gate->CheckTrust(c.trusted_keys) : "";
    if (!why.empty()) {
      gate.Refuse(why);
      spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", why);
    }
    if (const auto m = agent_gate->model_info()) {  // measured as it starts serving
      if (auto digest = govern::DigestOfHex(m->sha256)) {
        MeasureModel(&gate, m->path, *digest, why.empty());
      }
    }
    spdlog::info("gate: holding {} of files on {} path(s) ({} mode; it denies only while the "
                 "agent is in enforce mode)",
                 c.agent.gate.open ? "exec and open" : "exec", c.agent.gate.watch.size(),
                 agent_gate->configured_mode());
  }

  // 5. The eBPF sensor. Exits 2 with the exact reason when the kernel cannot do it.
  auto opened = sensor::EbpfSensor::Open(SensorOptions(c.agent));
  if (!opened.has_value()) {
    std::fprintf(stderr, "vigil agent: error: %s\n", opened.error().message().c_str());
    return kExitUsage;
  }
  std::unique_ptr<sensor::EbpfSensor> ebpf = std::move(opened).value();
  for (const std::string& w : ebpf->warnings()) spdlog::warn("ebpf: {}", w);

  // 5b. The syscall stream's owner: in budget mode (the default) it is switched on and off so
  // that its estimated cost stays within agent.syscall_stream_budget of all CPUs, and the live
  // handler cuts windows where it was off (docs/agent-stream-budget.md).
  auto stream_gaps = std::make_shared<agent::StreamGaps>();
  agent::EbpfStreamSwitch stream_switch(*ebpf);
  agent::StreamBudgetOptions stream_options;
  stream_options.budget = c.agent.syscall_stream_budget;
  stream_options.cpus = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  agent::StreamDutyCycler stream_cycler(
      stream_switch, c.agent.syscall_stream, stream_options, core::SystemClock::Get(),
      agent::ProcessCpuNs, stream_gaps,
      [](const core::Status& st) { spdlog::warn("ebpf: {}", st.message()); });
  if (c.agent.syscall_stream == core::SyscallStreamMode::kBudget) {
    spdlog::info(
        "syscall stream: budget {:.2f} % of {} CPUs (on while its estimated cost fits, "
        "else for that share of the time)",
        100 * c.agent.syscall_stream_budget, stream_options.cpus);
  } else {
    spdlog::info("syscall stream: {}", agent::StreamModeName(c.agent.syscall_stream));
  }

  // 6. The agent.
  agent::LiveOptions lo;
  lo.learn_ns = static_cast<int64_t>(c.agent.learn_seconds) * 1'000'000'000;
  lo.duration_ns = static_cast<int64_t>(duration_s) * 1'000'000'000;
  lo.window = c.agent.window;
  lo.baseline_path = c.agent.baseline;
  lo.relearn = o.relearn;
  lo.baseline = baseline;
  lo.model.name = std::string(kHostBaselineName);
  lo.model.version = "1";
  lo.model.min_subject_traces = c.agent.min_program_windows;
  lo.model.target_fpr = c.model.target_fpr;
  lo.stream_gaps = stream_gaps;
  lo.pipeline.queue_capacity = c.pipeline.queue.capacity;
  lo.pipeline.workers = static_cast<int>(c.pipeline.workers);
  lo.pipeline.host = c.host;
  lo.pipeline.emit_all = false;  // alerts only; learning and normal windows stay in the counters
  lo.pipeline.flush_each_verdict = true;  // an alert reaches its sink at once
  // Events written only to null sinks would be formatted for nothing (a JSON line per typed
  // event was most of the agent's CPU on an open/close loop).
  const bool only_null_sinks =
      std::all_of(specs.begin(), specs.end(), [](const std::string& s) { return s == "null"; });
  lo.pipeline.emit_events = c.agent.write_events && !only_null_sinks;
  const enrich::ProcessTree& tree_ref = **tree;
  enrich::ProcessTree& tree_mut = **tree;
  sensor::EbpfSensor& sensor_ref = *ebpf;
  // The process of the previous stream event, when nothing changed the tree since: the stream
  // comes in runs of one thread's calls, and its events need no lookup after the first of a run.
  uint32_t enriched_stream_pid = 0;
  lo.pipeline.on_read = [&](core::Event& e) {
    const sensor::EbpfEventDetail& d = sensor_ref.detail();
    if (d.has_ret) {
      e.has_ret = true;
      e.ret = d.ret;
    }
    switch (d.type) {
      case sensor::EbpfRecordType::kFork:
        e.kind = core::EventKind::kProcessFork;
        e.child_pid = d.child_pid;
        tree_mut.OnFork(e.proc.pid, d.child_pid, enrich::kUnknownTime);
        break;
      case sensor::EbpfRecordType::kExec:
        tree_mut.OnExec(e.proc.pid, e.path, d.argv, e.proc.uid, e.proc.comm, enrich::kUnknownTime);
        tree_mut.OnExecAttributes(e.proc.pid, e.proc);
        break;
      case sensor::EbpfRecordType::kExit:
        tree_mut.OnExit(e.proc.pid, enrich::kUnknownTime);
        break;
      case sensor::EbpfRecordType::kSyscall:
        // The kernel already gave pid, ppid, uid and comm; the tree adds only the executable,
        // which the scoring handler reads on the first event of a process. Copying it into
        // every stream event was an allocation per event and the agent's largest cost.
        if (e.proc.pid == enriched_stream_pid) return;
        enriched_stream_pid = e.proc.pid;
        break;
      default:
        // Typed records of calls also in the syscall stream must not be counted twice.
        if (e.kind == core::EventKind::kSyscall) e.kind = core::EventKind::kTypedCall;
        break;
    }
    if (d.type != sensor::EbpfRecordType::kSyscall) enriched_stream_pid = 0;
    tree_ref.Enrich(&e);
  };
  lo.on_note = WakeSignalThread;  // the signal thread logs the notes
  lo.on_model_change = [&](std::string_view action, size_t programs) {
    audit->ModelChange(action, c.agent.baseline, lo.model.name, lo.model.version,
                       std::to_string(programs) + " programs with a model of their own");
    std::lock_guard<std::mutex> lock(mode_mu);
    // Loaded: the bytes read at start (and checked then); trained: the file just written.
    auto bytes_digest = action == "loaded" && baseline
                            ? core::Result<std::string>(audit::Sha256Hex(baseline_bytes))
                            : audit::FileSha256(c.agent.baseline);
    const std::optional<govern::Sha256Digest> digest =
        bytes_digest.has_value() ? govern::DigestOfHex(*bytes_digest) : std::nullopt;
    if (action == "trained" && gate.wanted && digest) {
      // Learned by this process, not read from disk: trusted for this run, and signed with the
      // host key so that the next start verifies it.
      gate.allowed.insert(*digest);
      auto bytes = core::ReadFile(c.agent.baseline, govern::kMaxArtifactBytes);
      auto key = govern::LoadSecretKey(audit_options.key_path);
      core::Status signed_st = !bytes.has_value() ? bytes.error()
                               : !key.has_value() ? key.error()
                                                  : core::Status::Ok();
      if (signed_st.ok()) {
        auto sig = govern::SignArtifact(c.agent.baseline, *bytes, *key, "learned by vigil agent",
                                        NowUnix());
        if (!sig.has_value()) signed_st = sig.error();
      }
      if (!signed_st.ok()) {
        spdlog::warn("enforce: the learned baseline is not signed ({}); the next start will "
                     "refuse it", signed_st.message());
      }
    }
    if (gate.measurer && digest) {
      MeasureModel(&gate, c.agent.baseline, *digest, /*trusted=*/false);  // (allowed above)
    } else if (gate.measurer && gate.require_attestation) {
      gate.Refuse("attestation: cannot read " + c.agent.baseline + " to measure it");
    }
    if (gate.wanted && gate.refusal.empty() && gate.require_attestation) {
      auto check = govern::AttestLocally(*gate.measurer, gate.allowed);
      if (!check.has_value()) {
        gate.Refuse("local attestation: " + check.error().message());
      } else if (!check->ok()) {
        gate.Refuse("local attestation failed (" +
                    std::string(govern::QuoteFailureName(check->failure)) + "): " + check->detail);
      } else {
        spdlog::info("attestation: local quote verified ({} allowed digests)", gate.allowed.size());
      }
    }
    const std::string why = action == "loaded" ? "baselines reused" : "learning period over";
    std::string to = "monitor", reason = why;
    if (gate.wanted && gate.refusal.empty() && gate.needs_hub && !gate.hub_allowed) {
      reason = why + "; models verified; enforce mode waits for the hub: " + gate.hub_reason;
      spdlog::warn("enforce mode waits for the hub: {}", gate.hub_reason);
    } else if (gate.wanted && gate.refusal.empty()) {
      to = "enforce";
      reason = why + "; models verified" + (gate.require_attestation ? " and attested" : "") +
               (gate.needs_hub ? "; the hub allows it: " + gate.hub_reason : "");
    } else if (gate.wanted) {
      reason = why + "; enforce mode refused: " + gate.refusal;
      spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", gate.refusal);
    }
    audit->ModeChange(mode, to, reason);
    mode = to;
    if (policy_engine) policy_engine->SetEnforcementAllowed(to == "enforce" && actions);
    if (agent_gate) agent_gate->SetEnforcementAllowed(to == "enforce");
  };
  // The latest verdict per process, read by the policy as ml.* fields (shared, not copied per
  // event: a verdict carries its explanation's strings).
  std::mutex verdicts_mu;
  std::unordered_map<uint32_t, std::shared_ptr<const core::Verdict>> latest_verdicts;
  const int64_t boot_to_unix = agent::BootToUnixOffsetNs();
  if (policy_engine) {
    lo.pipeline.on_typed = [&](const core::Event& e) -> std::string {
      // Called by each pipeline worker: one cache per worker thread.
      thread_local agent::EvalInputCache inputs;
      policy::EvalInput& in = inputs.Build(tree_ref, e, boot_to_unix);
      std::shared_ptr<const core::Verdict> verdict;
      {
        std::lock_guard<std::mutex> lock(verdicts_mu);
        auto it = latest_verdicts.find(e.proc.pid);
        if (it != latest_verdicts.end()) verdict = it->second;
      }
      in.verdict = verdict.get();
      const policy::Decision d = policy_engine->Decide(&in, &inputs.memo());
      if (!d.matched()) return {};
      audit->PolicyDecision(d);
      if (!o.quiet) {
        std::lock_guard<std::mutex> lock(print_mu);
        std::fprintf(stderr, "POLICY %s [%s, %s%s]: %s\n", d.rule.c_str(),
                     std::string(policy::PriorityName(d.priority)).c_str(),
                     std::string(core::ActionName(d.action)).c_str(),
                     d.would_enforce ? ", would enforce" : "", d.output.c_str());
      }
      if (actions) actions->Submit(d);  // queues what enforces; never blocks
      return policy::DecisionToOcsfJson(d, c.host);
    };
  }
  lo.pipeline.on_verdict = [&](const core::Verdict& v) {
    if (policy_engine) {
      std::lock_guard<std::mutex> lock(verdicts_mu);
      if (latest_verdicts.size() >= 16384) latest_verdicts.clear();  // bounded; newest kept
      latest_verdicts[v.pid] = std::make_shared<const core::Verdict>(v);
    }
    if (v.anomalous) audit->Alert(v);
    if (!v.anomalous || o.quiet) return;
    std::string rare, recent;
    for (const core::Evidence& ev : v.explanation) {
      if (ev.what.rfind("recent: ", 0) == 0) {
        recent += (recent.empty() ? "" : "; ") + ev.what.substr(8);
      } else {
        rare += (rare.empty() ? "" : " | ") + ev.what;
      }
    }
    std::lock_guard<std::mutex> lock(print_mu);
    std::fprintf(stderr,
                 "ALERT %s pid %u user %s score %.2f\n  did: %s\n  rarest sequences: %s\n",
                 v.subject.c_str(), v.pid, UserName(tree_ref, v.pid, v.uid).c_str(), v.score,
                 recent.empty() ? "(no typed events)" : recent.c_str(), rare.c_str());
  };
  agent::LiveAgent live(lo, sinks, core::SystemClock::Get(), [&sensor_ref] { sensor_ref.Stop(); });

  // 7. Metrics and health.
  core::Registry& registry = core::Registry::Get();
  std::vector<core::Registry::CallbackHandle> handles;
  auto add = [&](const char* name, const char* help, const core::Labels& labels, bool gauge,
                 std::function<double()> read) {
    auto h = gauge ? registry.AddCallbackGauge(name, help, labels, std::move(read))
                   : registry.AddCallbackCounter(name, help, labels, std::move(read));
    if (h.has_value()) handles.push_back(std::move(h).value());
  };
  add("vigil_events_read_total", "Events the sensor delivered", {}, false,
      [&] { return live.Live().pipeline.read; });
  add("vigil_windows_scored_total", "Process windows scored", {}, false,
      [&] { return live.Live().windows_scored; });
  add("vigil_alerts_total", "Anomalous windows", {}, false, [&] { return live.Live().alerts; });
  add("vigil_learned_windows_total", "Windows collected while learning", {}, false,
      [&] { return live.Live().learned_windows; });
  add("vigil_programs_learned", "Programs with a baseline of their own", {}, true,
      [&] { return live.Live().programs_learned; });
  add("vigil_queue_dropped_total", "Events dropped by the queue", {{"cause", "full"}}, false,
      [&] { return live.Live().pipeline.queue.dropped_full; });
  for (size_t i = 0; i < sensor::kEbpfLostCauseCount; ++i) {
    const auto cause = static_cast<sensor::EbpfLostCause>(i);
    add("vigil_kernel_events_lost_total", "Events lost or damaged in the kernel sensor, by cause",
        {{"cause", std::string(sensor::EbpfLostCauseName(cause))}}, false, [&sensor_ref, i] {
          auto lost = sensor_ref.LostCounts();
          return lost.has_value() ? static_cast<double>((*lost)[i]) : 0.0;
        });
  }
  add("vigil_resident_memory_bytes", "Resident memory of the agent", {}, true,
      [] { return ResidentMegabytes() * 1e6; });
  // The syscall stream under its budget (docs/agent-stream-budget.md).
  for (const auto stream_mode : {core::SyscallStreamMode::kOff, core::SyscallStreamMode::kOn,
                                 core::SyscallStreamMode::kBudget}) {
    add("vigil_syscall_stream_mode", "agent.syscall_stream in force (1: this one)",
        {{"mode", std::string(agent::StreamModeName(stream_mode))}}, true,
        [&stream_cycler, stream_mode] {
          return stream_cycler.Stats().mode == stream_mode ? 1.0 : 0.0;
        });
  }
  add("vigil_syscall_stream_on", "1 while the per-call syscall stream is on", {}, true,
      [&stream_cycler] { return stream_cycler.Stats().on ? 1.0 : 0.0; });
  add("vigil_syscall_stream_on_seconds_total", "Time the syscall stream was on", {}, false,
      [&stream_cycler] { return static_cast<double>(stream_cycler.Stats().on_ns) * 1e-9; });
  add("vigil_syscall_stream_duty", "Share of the time the syscall stream was on since the start",
      {}, true, [&stream_cycler] { return stream_cycler.Stats().duty; });
  add("vigil_syscall_stream_planned_duty",
      "Share of the time the budget lets the syscall stream be on at its estimated cost", {}, true,
      [&stream_cycler] { return stream_cycler.Stats().planned_duty; });
  add("vigil_syscall_stream_cost",
      "Estimated share of all CPUs the syscall stream costs while on (kernel side and agent)", {},
      true, [&stream_cycler] { return stream_cycler.Stats().cost; });
  add("vigil_syscall_stream_budget",
      "Share of all CPUs the syscall stream may cost (agent.syscall_stream_budget; 0 unless in "
      "budget mode)",
      {}, true, [&stream_cycler] { return stream_cycler.Stats().budget; });
  for (const bool to_on : {true, false}) {
    add("vigil_syscall_stream_switches_total", "Times the syscall stream was switched",
        {{"to", to_on ? "on" : "off"}}, false, [&stream_cycler, to_on] {
          const agent::StreamDutyStats s = stream_cycler.Stats();
          return static_cast<double>(to_on ? s.switched_on : s.switched_off);
        });
  }
  add("vigil_syscall_stream_switch_failures_total", "Switches of the syscall stream that failed",
      {}, false,
      [&stream_cycler] { return static_cast<double>(stream_cycler.Stats().switch_failures); });
  add("vigil_stream_gap_cuts_total",
      "Process windows cut where the syscall stream had been off (no sequence spans a gap)", {},
      false, [&] { return live.Live().gap_cuts; });
  // The mode the agent is in (1 for the current one), and whether enforce mode was asked for
  // and refused (its reason is in the log, the audit log and /healthz's enforce_refused).
  for (const char* m : {"learning", "monitor", "enforce"}) {
    add("vigil_agent_mode", "The agent's mode (1: the one it is in)", {{"mode", m}}, true,
        [&mode_mu, &mode, m] {
          std::lock_guard<std::mutex> lock(mode_mu);
          return mode == m ? 1.0 : 0.0;
        });
  }
  add("vigil_enforce_refused", "1 when enforce mode is configured but refused (monitor mode)", {},
      true, [&mode_mu, &gate] {
        std::lock_guard<std::mutex> lock(mode_mu);
        return gate.wanted && !gate.refusal.empty() ? 1.0 : 0.0;
      });
  auto tree_metrics = tree_mut.ExportMetrics(&registry);
  std::unique_ptr<core::MetricsServer> server;
  std::string listen = o.metrics_listen;
  if (listen.empty() && c.metrics.enabled && !o.no_metrics) listen = c.metrics.listen.ToString();
  if (!listen.empty()) {
    auto addr = core::ParseHostPort(listen);
    if (!addr.has_value()) return ReportError("agent", addr.error().WithContext("metrics"));
    server = std::make_unique<core::MetricsServer>(registry, [&] {
      core::HealthReport h;
      const agent::LiveStats s = live.Live();
      nlohmann::json lost = nlohmann::json::object();
      if (auto l = sensor_ref.LostCounts(); l.has_value()) {
        for (size_t i = 0; i < sensor::kEbpfLostCauseCount; ++i) {
          lost[std::string(sensor::EbpfLostCauseName(static_cast<sensor::EbpfLostCause>(i)))] =
              (*l)[i];
        }
      }
      h.detail = {{"phase", agent::LivePhaseName(s.phase)},
                  {"events_read", s.pipeline.read},
                  {"events_per_second", s.pipeline.seconds > 0 ? s.pipeline.read / s.pipeline.seconds : 0.0},
                  {"queue_dropped", s.pipeline.queue.dropped_full},
                  {"kernel_lost", lost},
                  {"processes_tracked", tree_ref.size()},
                  {"programs_learned", s.programs_learned},
                  {"learned_windows", s.learned_windows},
                  {"windows_scored", s.windows_scored},
                  {"alerts", s.alerts},
                  {"enforcement_queued", actions ? actions->queued() : 0},
                  {"resident_mb", ResidentMegabytes()}};
      const agent::StreamDutyStats st = stream_cycler.Stats();
      h.detail["syscall_stream"] = {{"mode", std::string(agent::StreamModeName(st.mode))},
                                    {"on", st.on},
                                    {"duty", st.duty},
                                    {"planned_duty", st.planned_duty},
                                    {"cost", st.cost},
                                    {"budget", st.budget},
                                    {"switches_on", st.switched_on},
                                    {"switches_off", st.switched_off},
                                    {"switch_failures", st.switch_failures},
                                    {"gap_cuts", s.gap_cuts}};
      std::lock_guard<std::mutex> lock(mode_mu);
      h.detail["mode"] = mode;
      h.detail["enforce_wanted"] = gate.wanted;
      if (gate.wanted && !gate.refusal.empty()) h.detail["enforce_refused"] = gate.refusal;
      return h;
    });
    if (auto st = server->Start(addr->host, addr->port); !st.ok()) {
      return ReportError("agent", st);
    }
    spdlog::info("metrics and health on http://{}:{}/ (/metrics, /healthz)", addr->host,
                 server->port());
  }

  // 7b. Policy reloads (SIGHUP, or a policy rolled out by the hub): the new policy replaces the
  // old one only when it loads; enforce mode re-checks its signatures. The fanotify gate's rules
  // follow (its own files read again, or the agent's new policy), swapped in atomically.
  std::mutex reload_mu;
  // An untrusted policy after a reload (mode_mu held): monitor mode until a restart re-checks
  // every precondition.
  auto refuse_after_reload = [&](const std::string& cause, const std::string& why,
                                 const std::string& what = "policy") {
    if (why.empty() || mode != "enforce") return;
    if (policy_engine) policy_engine->SetEnforcementAllowed(false);
    if (agent_gate) agent_gate->SetEnforcementAllowed(false);
    audit->ModeChange(mode, "monitor",
                      what + " reloaded (" + cause + "); enforce mode refused: " + why);
    mode = "monitor";
  };
  auto reload_gate = [&](const std::string& cause,
                         std::shared_ptr<const policy::PolicySnapshot> snap) -> core::Status {
    if (!agent_gate) return {};
    core::Status st = agent_gate->Reload(std::move(snap));
    if (c.agent.gate.policy.empty()) return st;  // the agent's policy: recorded with it
    const std::string version = agent_gate->policy_version();
    if (!st.ok()) {
      spdlog::error("{}: gate rules not reloaded, {} stays in force: {}", cause, version,
                    st.message());
      audit->PolicyChange("refused", version, 0, c.agent.gate.policy, st.message());
      return st;
    }
    spdlog::info("{}: gate rules {} in force", cause, version);
    audit->PolicyChange("reloaded", version, 0, c.agent.gate.policy,
                        "the fanotify gate's rules (" + cause + ")");
    if (gate.wanted) {
      std::lock_guard<std::mutex> lock(mode_mu);
      const std::string why = agent_gate->CheckTrust(c.trusted_keys);
      if (!why.empty()) {
        gate.Refuse(why);
        spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", why);
      }
      refuse_after_reload(cause, why);
    }
    return {};
  };
  auto reload_policy = [&](const std::string& cause) -> core::Status {
    std::lock_guard<std::mutex> reload_lock(reload_mu);
    core::Status ps = policy_engine->Reload();
    const auto snap = policy_engine->Current();
    if (!ps.ok()) {
      spdlog::error("{}: policy not reloaded, {} stays in force: {}", cause, snap->version,
                    ps.message());
      audit->PolicyChange("refused", snap->version, snap->generation, snap->files, ps.message());
      (void)reload_gate(cause, nullptr);  // its own files, if any
      return ps;
    }
    spdlog::info("{}: policy {} in force (generation {})", cause, snap->version,
                 snap->generation);
    audit->PolicyChange("reloaded", snap->version, snap->generation, snap->files, cause);
    {
      std::lock_guard<std::mutex> lock(mode_mu);
      refuse_after_reload(cause, VetPolicy(&gate, c.policy.files, *snap, audit.get()));
    }
    (void)reload_gate(cause, snap);
    return {};
  };

  // The gate model's reloads (SIGHUP, or a model rolled out by the hub): the new model replaces
  // the old one only when it loads and scores system-call sequences; it is measured as it comes
  // into force, and in enforce mode its signature is checked again (untrusted: monitor mode).
  auto reload_gate_model = [&](const std::string& cause) -> core::Status {
    if (!agent_gate || c.agent.gate.model.empty()) {
      return core::FailedPrecondition("no gate model is configured (agent.gate.model)");
    }
    std::lock_guard<std::mutex> reload_lock(reload_mu);
    auto info = agent_gate->ReloadModel(cause);
    if (!info.has_value()) {
      const auto in_force = agent_gate->model_info();
      if (in_force) {
        spdlog::error("{}: gate model not reloaded, {} {} stays in force: {}", cause,
                      in_force->name, in_force->version, info.error().message());
      } else {
        spdlog::error("{}: gate model not loaded, the gate stays without a model: {}", cause,
                      info.error().message());
      }
      return info.error();
    }
    spdlog::info("{}: gate model {} {} in force (sha256 {})", cause, info->name, info->version,
                 info->sha256);
    std::lock_guard<std::mutex> lock(mode_mu);
    const std::string why = gate.wanted ? agent_gate->CheckTrust(c.trusted_keys) : "";
    if (auto digest = govern::DigestOfHex(info->sha256)) {
      MeasureModel(&gate, info->path, *digest, why.empty());
    }
    if (!why.empty()) {
      gate.Refuse(why);
      spdlog::error("ALERT enforce mode refused, running in monitor mode: {}", why);
      refuse_after_reload(cause, why, "gate model");
    }
    return {};
  };

  // 7c. The fleet link: with a hub sink, register with the hub and heartbeat; apply the
  // policies it rolls out to this host's group after checking their signatures here.
  std::unique_ptr<agent::FleetLink> fleet;
  if (outputs->hub != nullptr) {
    core::HubSinkConfig hub_config;
    for (const core::SinkConfig& s : c.sinks) {
      if (s.type == core::SinkType::kHub) hub_config = s.hub;
    }
    agent::FleetLinkOptions fo;
    fo.link = outputs->hub_link;
    fo.link.timeout = std::chrono::milliseconds(5000);
    fo.group = hub_config.group;
    fo.heartbeat = std::chrono::seconds(hub_config.heartbeat_seconds);
    fo.vigil_version = VIGIL_VERSION;
    fo.policy_file = hub_config.policy_file;
    if (!fo.policy_file.empty() &&
        std::find(c.policy.files.begin(), c.policy.files.end(), fo.policy_file) ==
            c.policy.files.end()) {
      return ReportError("agent", core::InvalidArgument(
                                      "hub sink policy_file \"" + fo.policy_file +
                                      "\" is not one of policy.files: a policy the hub rolls "
                                      "out would never be loaded"));
    }
    if (!fo.policy_file.empty() && !policy_engine) {
      return ReportError("agent", core::InvalidArgument(
                                      "hub sink policy_file is set but policy.enabled is false"));
    }
    fo.model_file = hub_config.model_file;
    if (!fo.model_file.empty() && (!agent_gate || fo.model_file != c.agent.gate.model)) {
      return ReportError(
          "agent", core::InvalidArgument(
                       "hub sink model_file \"" + fo.model_file +
                       "\" is not agent.gate.model of a configured gate (agent.gate.watch): a "
                       "model the hub rolls out would never be loaded (the host baseline is "
                       "learned here, not distributed)"));
    }
    auto keys = govern::LoadTrustedKeys(c.trusted_keys);
    if (keys.has_value()) {
      fo.trusted = std::move(keys).value();
    } else {
      fo.trust_error = keys.error().message();
    }
    fo.health = [&] {
      agent::FleetHealth h;
      {
        std::lock_guard<std::mutex> lock(mode_mu);
        h.mode = mode;
      }
      if (policy_engine) h.policy_version = policy_engine->Current()->version;
      const agent::LiveStats s = live.Live();
      h.events = s.pipeline.read;
      h.drops = s.pipeline.queue.dropped_full;
      h.alerts = s.alerts;
      if (const auto m = agent_gate ? agent_gate->model_info() : std::nullopt) {
        h.model_version = m->name + " " + m->version;
        h.model_digest = m->sha256;
      }
      return h;
    };
    fo.reload_policy = [&] { return reload_policy("policy rolled out by the hub"); };
    fo.check_model = [](const model::ModelFile& file, const std::string& source) {
      return CheckGateModelFile(file, source);
    };
    fo.reload_model = [&] { return reload_gate_model("model rolled out by the hub"); };
    fo.addresses = [] { return agent::HostAddresses(); };
    fo.audit_key = hub::AuditKeyReport{audit::KeyIdString(audit->public_key().id),
                                       govern::HexOf(audit->public_key().key)};
    {
      std::lock_guard<std::mutex> lock(mode_mu);
      gate.needs_hub = gate.wanted && hub_config.enforce_requires_hub;
      if (gate.measurer) {
        fo.quote = [&](const std::string& nonce) -> core::Result<std::string> {
          std::lock_guard<std::mutex> quote_lock(mode_mu);
          // With the TPM's EK certificate when it has one, for a hub that ties the AK to the EK.
          auto q = gate.measurer->Quote({}, nonce, /*with_ek=*/true);
          if (!q.has_value() && q.error().code() == core::StatusCode::kNotFound) {
            q = gate.measurer->Quote({}, nonce);
          }
          if (!q.has_value()) return q.error();
          return govern::EncodeQuoteDocument(*q);
        };
        fo.activate =
            [&](const govern::CredentialChallenge& challenge) -> core::Result<std::string> {
          std::lock_guard<std::mutex> activate_lock(mode_mu);
          return gate.measurer->tpm().ActivateCredential(challenge);
        };
      }
    }
    fo.on_enforce = [&](bool allowed, const std::string& reason) {
      std::lock_guard<std::mutex> lock(mode_mu);
      gate.hub_allowed = allowed;
      gate.hub_reason = reason;
      if (!gate.needs_hub || !gate.refusal.empty()) return;
      if (mode == "monitor" && allowed) {
        audit->ModeChange(mode, "enforce", "the hub allows enforce mode: " + reason);
        mode = "enforce";
        if (policy_engine) policy_engine->SetEnforcementAllowed(actions != nullptr);
        if (agent_gate) agent_gate->SetEnforcementAllowed(true);
        spdlog::info("enforce mode: the hub allows it ({})", reason);
      } else if (mode == "enforce" && !allowed) {
        audit->ModeChange(mode, "monitor", "the hub withdrew enforce mode: " + reason);
        mode = "monitor";
        if (policy_engine) policy_engine->SetEnforcementAllowed(false);
        if (agent_gate) agent_gate->SetEnforcementAllowed(false);
        spdlog::error("ALERT enforce mode withdrawn by the hub: {}", reason);
      }
    };
    fo.audit = [&audit](const std::string& kind, const std::string& action,
                        const std::string& digest, const std::string& reason) {
      audit->Append(kind == "policy" ? audit::RecordType::kPolicyChange
                                     : audit::RecordType::kModelChange,
                    {{"action", action == "applied" ? "hub-applied" : "hub-refused"},
                     {"sha256", digest},
                     {"reason", reason},
                     {"by", "hub"}});
    };
    auto link = agent::FleetLink::Create(std::move(fo));
    if (!link.has_value()) return ReportError("agent", link.error().WithContext("hub sink"));
    fleet = std::move(link).value();
    fleet->Start();
  }

  // 7d. The hub certificate (a grpcs:// hub link): renewed over the link before it runs out; the
  // hub clients switch to the new pair at their next call.
  std::unique_ptr<agent::CertRenewer> renewer;
  if (outputs->hub != nullptr && core::IsGrpcsUrl(outputs->hub_link.url)) {
    core::HubSinkConfig hub_config;
    for (const core::SinkConfig& s : c.sinks) {
      if (s.type == core::SinkType::kHub) hub_config = s.hub;
    }
    if (hub_config.renew) {
      agent::RenewOptions ro;
      ro.target = outputs->hub_link.url.substr(std::string_view("grpcs://").size());
      ro.files = {outputs->hub_link.cert_file, outputs->hub_link.key_file,
                  outputs->hub_link.ca_file};
      ro.host = outputs->hub_link.host;
      renewer = std::make_unique<agent::CertRenewer>(
          ro, hub_config.renew_at, [&audit, ro](const core::Result<agent::Renewed>& r) {
            if (r.has_value()) {
              audit->Append(audit::RecordType::kAccessGrant, {{"action", "hub-cert-renewed"},
                                                              {"cert", ro.files.cert},
                                                              {"sha256", r->sha256},
                                                              {"expires", r->not_after_s}});
            } else {
              audit->Append(audit::RecordType::kAccessGrant,
                            {{"action", "hub-cert-renewal-failed"},
                             {"cert", ro.files.cert},
                             {"reason", r.error().message()}});
            }
          });
      renewer->Start();
    }
  }

  // 8. Signals: SIGINT/SIGTERM stop cleanly, SIGHUP reloads filters and the event set, the
  // policy and the gate's rules and model. (They were blocked at the start, so every thread
  // inherited the mask and only this one takes them.)
  // It blocks until a signal, a request recorded by the handler, a note or the end (no
  // periodic wake-ups: an idle agent stays asleep here).
  std::atomic<bool> done{false};
  std::thread signals([&] {
    std::vector<int> pending;  // signals to act on, in the order they came
    while (!done.load()) {
      if (pending.empty()) {
        pollfd fds[2] = {{signal_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR) {
          spdlog::error("signal thread: poll: {}", std::strerror(errno));
          return;
        }
        uint64_t woken = 0;
        ssize_t got = read(wake_fd, &woken, sizeof(woken));
        (void)got;  // EAGAIN: not woken through it
        signalfd_siginfo si{};
        while (read(signal_fd, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
          pending.push_back(static_cast<int>(si.ssi_signo));
        }
        if (g_stop_requested.exchange(false)) pending.push_back(SIGTERM);
        if (g_reload_requested.exchange(false)) pending.push_back(SIGHUP);
      }
      int sig = 0;
      if (!pending.empty()) {
        sig = pending.front();
        pending.erase(pending.begin());
      }
      for (const std::string& note : live.TakeNotes()) spdlog::info("{}", note);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("stopping (signal {})", sig);
        live.Stop();
      } else if (sig == SIGHUP) {
        auto fresh = core::LoadConfig(o.config);
        if (!fresh.has_value()) {
          spdlog::error("SIGHUP: config not reloaded: {}", fresh.error().message());
          continue;
        }
        if (policy_engine) {
          (void)reload_policy("SIGHUP");
        } else {
          (void)reload_gate("SIGHUP", nullptr);  // the gate's own files
        }
        if (agent_gate && !c.agent.gate.model.empty()) (void)reload_gate_model("SIGHUP");
        core::Status st = ApplyRuntimeConfig(sensor_ref, stream_cycler, fresh->agent);
        if (st.ok()) {
          spdlog::info("SIGHUP: reloaded filters and event set from {}", o.config);
        } else {
          spdlog::error("SIGHUP: applying the reloaded config failed: {}", st.message());
        }
      }
    }
  });

  spdlog::info("vigil agent on {}: learning for {} s (baselines: {}), window {} calls", c.host,
               c.agent.learn_seconds, c.agent.baseline, c.agent.window);
  // What start-up parsed and dropped (rules, /proc, the BPF objects) goes back to the kernel.
  agent::ReleaseFreeHeap();
  stream_cycler.Start();  // measures from here: start-up is not the stream's cost
  auto stats = live.Run(*ebpf, [](const core::Status& st) {
    spdlog::warn("ebpf: skipped a malformed record: {}", st.message());
  });
  done = true;
  WakeSignalThread();
  signals.join();
  if (durable) (void)durable->Flush();
  DrainHub(*outputs, "agent");
  for (const std::string& note : live.TakeNotes()) spdlog::info("{}", note);
  if (fleet) fleet->Stop();
  if (server) server->Stop();
  if (hub_escalations) hub_escalations->Stop();
  if (agent_gate) {  // before the audit log closes: its records go there
    agent_gate->Stop();
    spdlog::info("gate: {}", agent_gate->Summary());
  }
  if (actions) actions->Stop();  // carries out what is queued; its audit records go in below
  {
    std::lock_guard<std::mutex> lock(mode_mu);
    audit->ModeChange(mode, "stopped",
                      stats.has_value() ? "agent stopped" : "agent failed: " + stats.error().message());
  }
  if (auto st = audit->Close(); !st.ok()) return ReportError("agent", st);
  spdlog::info("audit log {}: {} decision records", audit->dir(), audit->decisions());
  DrainCheckpoints(*outputs, "agent");  // the log's last checkpoint is written by Close()
  if (!stats.has_value()) return ReportError("agent", stats.error());
  uint64_t lost_total = 0;  // events the kernel side could not deliver (filtered ones are wanted)
  if (auto l = ebpf->LostCounts(); l.has_value()) {
    lost_total = (*l)[static_cast<size_t>(sensor::EbpfLostCause::kRingBufferFull)] +
                 (*l)[static_cast<size_t>(sensor::EbpfLostCause::kPendingFull)] +
                 (*l)[static_cast<size_t>(sensor::EbpfLostCause::kBadRecord)];
  }
  std::fprintf(stderr,
               "vigil agent: %" PRIu64 " events in %.1f s, %" PRIu64 " windows learned, %" PRIu64
               " scored, %" PRIu64 " alerts; %" PRIu64 " lost in the kernel, %" PRIu64
               " dropped in the queue\n",
               stats->pipeline.read, stats->pipeline.seconds, stats->learned_windows,
               stats->windows_scored, stats->alerts, lost_total, stats->pipeline.queue.dropped_full);
  return kExitOk;
}

}  // namespace

RunFn AddAgentCommand(CLI::App& root) {
  auto o = std::make_shared<AgentCmdOptions>();
  CLI::App* cmd = root.add_subcommand(
      "agent", "Watch this host with the eBPF sensor: learn per-program baselines, then alert "
               "on anomalous behaviour and decide on every typed event with the policy. Enforce "
               "mode is entered only with a baseline and policy files signed by a trusted key "
               "(and, with attestation.require, a verified local TPM quote); otherwise the agent "
               "stays in "
               "monitor mode and records why. In enforce mode, decisions that enforce (policy, "
               "rule and rollout stage) are carried out (kill, freeze, block-network, escalate) "
               "and recorded in <state_dir>/enforcement.db; see vigil enforcement. With "
               "agent.gate in the config, execs (and opens) of files on the configured paths "
               "also wait for the policy (fanotify; denied only in enforce mode, counted as "
               "would-have-enforced otherwise; docs/gates.md). SIGHUP reloads the policy and the "
               "gate's rules and model; with a hub sink, signed policies and gate models rolled "
               "out by the hub are verified here and applied (policy_file, model_file; "
               "docs/hub.md)");
  cmd->add_option("--config", o->config,
                  "YAML config (sensors, event set, filters, sinks and the hub, learning period, "
                  "metrics, the fanotify gate agent.gate); a "
                  "missing default file means embedded defaults")
      ->capture_default_str();
  cmd->add_option("--learn", o->learn, "Learning period, e.g. 60s, 5m (default from config: 5m)");
  cmd->add_option("--duration", o->duration,
                  "Stop after this long, flushing every sink (default: until SIGINT/SIGTERM)");
  cmd->add_option("--sink", o->sinks,
                  "Where alerts go: stdout, file:PATH, null, hub:URL (a Vigil hub, with "
                  "--hub-token-file; escalations then go to that hub too) or "
                  "nats:nats://HOST:PORT (a NATS JetStream stream that hubs consume); see "
                  "docs/hub.md; repeatable (default from config: its sinks, hub and nats sinks "
                  "included, whose settings the --hub-* and --nats-* flags override)");
  AddHubLinkFlags(cmd, &o->hub);
  AddNatsLinkFlags(cmd, &o->nats);
  cmd->add_option("--baseline", o->baseline,
                  "Baseline model file (default <state_dir>/models/baseline.vgm); reused when "
                  "present");
  cmd->add_option("--state-dir", o->state_dir, "State directory (default /var/lib/vigil)");
  cmd->add_flag("--relearn", o->relearn, "Ignore an existing baseline and learn again");
  cmd->add_option("--metrics-listen", o->metrics_listen,
                  "Serve /metrics and /healthz on HOST:PORT (default from config: "
                  "127.0.0.1:9464)");
  cmd->add_flag("--no-metrics", o->no_metrics, "Do not serve /metrics and /healthz");
  cmd->add_flag("--quiet", o->quiet, "Do not print alerts on stderr (sinks still get them)");
  cmd->add_option("--audit", o->audit_dir,
                  "Audit log directory: mode changes, baselines loaded or learned, one decision "
                  "record per alert (default <state_dir>/audit)");
  AddAuditKeyFlags(cmd, &o->audit_key, &o->audit_fsync);
  cmd->add_option("--mode", o->mode, "monitor or enforce (default: mode of the config, monitor)")
      ->check(CLI::IsMember({"monitor", "enforce"}));
  std::function<int()> enrol = AddAgentEnrolCommand(cmd);
  std::function<int()> renew = AddAgentRenewCommand(cmd);
  return [o, cmd, enrol, renew] {
    if (const int code = enrol(); code >= 0) return code;
    if (const int code = renew(); code >= 0) return code;
    return RunAgent(*o, *cmd);
  };
}

}  // namespace vigil::app
