#pragma once

// The agent's configuration file (YAML, loaded with yaml-cpp). The full schema with defaults is
// in docs/configuration.md. Every key is optional; unknown keys are errors so that a typo is
// never silently ignored. Every error names the input, the line and column (1-based) and the key
// path, e.g.
//   vigil.yaml:7:3: pipeline.queue.capacity: expected a positive integer, got "abc"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "core/status.h"

namespace vigil::core {

// Read by LoadConfig(kDefaultConfigPath); when that file is absent, DefaultConfig() applies.
inline constexpr std::string_view kDefaultConfigPath = "/etc/vigil/vigil.yaml";
// Larger config files are refused (kInvalidArgument) before parsing.
inline constexpr size_t kMaxConfigBytes = size_t{4} << 20;

// What a full pipeline queue does with a new event.
enum class Backpressure {
  kBlock,       // the producer waits (no loss; gates may hit their deadline instead)
  kDropNewest,  // the new event is dropped and counted
  kDropOldest,  // the oldest queued event is dropped and counted
  kSample,      // only every `sample_every`-th event is admitted while full
};
enum class FsyncPolicy { kAlways, kBatch, kNever };
enum class SinkType { kStdout, kFile, kNull, kHub, kNats };

// "block", "drop-newest", "drop-oldest", "sample" (the names used in the file).
std::string_view BackpressureName(Backpressure b);
// "always", "batch", "never".
std::string_view FsyncPolicyName(FsyncPolicy f);
// "stdout", "file", "null", "hub", "nats".
std::string_view SinkTypeName(SinkType t);

// True for a hub's base URL, "http://HOST[:PORT]" or "https://HOST[:PORT]" with nothing after
// (no path, no user info); *https says which scheme.
bool IsHttpBaseUrl(std::string_view url, bool* https);
// grpcs://HOST:PORT (the hub's agent port, gRPC over TLS), no path.
bool IsGrpcsUrl(std::string_view url);

// NATS names (docs/hub.md "NATS JetStream"): a server URL "nats://HOST[:PORT]" or
// "tls://HOST[:PORT]" (no user info, no path, one server); a stream or durable consumer name,
// 1..64 bytes of [A-Za-z0-9_-]; a subject prefix, dot-separated tokens of [A-Za-z0-9_-]
// (1..128 bytes, no wildcards).
bool IsNatsUrl(std::string_view url);
bool IsNatsName(std::string_view name);
bool IsNatsSubjectPrefix(std::string_view prefix);

// A parsed "host:port" ("127.0.0.1:9464", "localhost:0", "[::1]:9464"). Port 0 means "any free
// port" where the consumer supports it.
// "90", "90s", "5m", "2h", "1d" -> seconds. kInvalidArgument naming the text otherwise.
Result<uint64_t> ParseDurationSeconds(std::string_view text);
// A gate's per-call deadline: a whole number with us, ms or s ("5ms", "500us"), 100 us to 10 s,
// in ns. kInvalidArgument saying what was expected otherwise.
Result<int64_t> ParseGateDeadline(std::string_view text);

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
  // "host:port", with brackets around an IPv6 host.
  std::string ToString() const;
};
// Parses "host:port". The host must be non-empty (IPv6 literals in brackets); the port is a
// decimal in 0..65535. Errors (kInvalidArgument) quote the text and say what is wrong.
Result<HostPort> ParseHostPort(std::string_view text);

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

struct MetricsConfig {
  bool enabled = true;
  HostPort listen{"127.0.0.1", 9464};
};

struct QueueConfig {
  uint32_t capacity = 4096;  // events per worker queue; >= 1 (slots are built as it fills)
  Backpressure backpressure = Backpressure::kBlock;
  uint32_t sample_every = 10;  // >= 1; used by kSample
};

struct SpoolConfig {
  bool enabled = false;
  std::string dir;  // default <state_dir>/spool
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  uint64_t segment_bytes = uint64_t{64} << 20;  // >= 4096
};

struct PipelineConfig {
  QueueConfig queue;
  SpoolConfig spool;
  uint32_t workers = 2;  // 1..64
};

// A hub sink (docs/hub.md, "The agent's hub sink"); the same settings as the --hub-* flags.
// The URL's scheme picks the transport: http(s):// the REST API with an agent token,
// grpcs:// the hub's agent port (agents.listen) over mTLS with the enrolled certificate.
struct HubSinkConfig {
  std::string url;         // required; IsHttpBaseUrl() or IsGrpcsUrl()
  std::string token_file;  // http(s) only, required there: an agent token for this host
  std::string ca;          // https: PEM bundle the hub's certificate must chain to;
                           // grpcs: the hub CA (required; ca.pem from `vigil agent enrol`)
  std::string cert;        // grpcs only, required: agent.pem from `vigil agent enrol`
  std::string key;         // grpcs only, required: agent.key from `vigil agent enrol`
  std::string spool;       // "": <state_dir>/hub-spool
  FsyncPolicy spool_sync = FsyncPolicy::kAlways;
  uint64_t drain_seconds = 30;  // how long the end of a run waits for the hub
  bool all_verdicts = false;    // every verdict, not only anomalous ones
  // The fleet link (docs/hub.md, "Fleet"): the agent registers with this hub and heartbeats.
  std::string group = "default";  // the rollout group; ValidGroupName
  uint64_t heartbeat_seconds = 10;  // 1..3600
  std::string policy_file;  // a distributed policy replaces this file (one of policy.files);
                            // "": policy updates are refused
  std::string model_file;   // a distributed model replaces this file (agent.gate.model);
                            // "": model updates are refused
  bool enforce_requires_hub = false;  // enforce mode waits until the hub allows it
  // grpcs only: the agent renews its certificate (a fresh key, over its mTLS channel) once this
  // fraction of the certificate's validity (notBefore to notAfter) has passed; 0 < renew_at < 1.
  double renew_at = 0.67;
  bool renew = true;  // false: never renewed here (enrol again before it expires)
};

// A NATS JetStream sink (docs/hub.md "NATS JetStream"); the same settings as the --nats-* flags.
struct NatsSinkConfig {
  std::string url;                     // required; IsNatsUrl()
  std::string stream = "VIGIL";        // IsNatsName()
  std::string subject_prefix = "vigil";  // IsNatsSubjectPrefix()
  std::string token_file;              // first line: the server's token (or creds, not both)
  std::string creds;                   // a NATS user credentials file
  std::string spool;                   // "": <state_dir>/nats-spool
  FsyncPolicy spool_sync = FsyncPolicy::kAlways;
  uint64_t drain_seconds = 30;  // how long the end of a run waits for the stream
  bool all_verdicts = false;    // every verdict, not only anomalous ones
  // A hub URL where the host registers its audit key (with the hub sink settings' credentials:
  // token_file, or cert/key/ca from the --hub-* flags); "": none (docs/hub.md "Audit checkpoints").
  std::string audit_key_hub;
};

struct SinkConfig {
  SinkType type = SinkType::kStdout;
  std::string path;                             // kFile only, and required there
  uint64_t rotate_bytes = uint64_t{100} << 20;  // kFile only; >= 1
  uint32_t keep = 5;                            // kFile only; rotated files kept
  HubSinkConfig hub;                            // kHub only (at most one hub sink)
  NatsSinkConfig nats;                          // kNats only (at most one nats sink)
};

struct ModelConfig {
  std::string path;          // default <state_dir>/models/adfa.vgm
  double target_fpr = 0.05;  // in (0, 1)
};

// The live host agent (vigil agent).
struct AgentFilterConfig {
  std::vector<std::string> exclude_comms;  // matched on the first 15 bytes, as the kernel does
  std::vector<std::string> include_comms;  // non-empty: only these
  std::vector<uint32_t> exclude_uids;
  std::vector<uint32_t> include_uids;
  std::vector<uint64_t> exclude_cgroups;   // cgroup v2 ids
  std::vector<uint64_t> include_cgroups;
};

// The gates' SCHED_FIFO priority unless told otherwise (docs/gates.md, "Priority"): above every
// normally scheduled thread, below the kernel's own real-time threads (50 and up).
inline constexpr uint32_t kDefaultGateRealtimePriority = 10;

// The fanotify gate inside the agent (docs/gates.md, "In vigil agent"): execs (and, with
// `open`, opens) of files on `watch` wait for the policy. Off while `watch` is empty.
struct AgentGateConfig {
  std::vector<std::string> watch;  // absolute paths: files, or directories (the files in them)
  bool open = false;               // hold opens too, not only execs
  std::string mode;                // "" (the agent's mode), monitor or enforce
  int64_t deadline_ns = 5'000'000;  // per held call, 100 us .. 10 s (ParseGateDeadline)
  bool fallback_deny = false;      // the answer at the deadline before any rule is at stake
  std::vector<std::string> policy;  // rules files; [] = the agent's policy (policy.files)
  std::string model;                // "" = none (ml.* absent); a gate model (docs/gates.md)
  uint32_t realtime_priority = kDefaultGateRealtimePriority;  // 0 (off) .. 99
};

// agent.syscall_stream: the per-call stream off, on all the time, or on for the share of the time
// that keeps its estimated cost within agent.syscall_stream_budget (docs/agent-stream-budget.md).
enum class SyscallStreamMode : uint8_t { kOff, kOn, kBudget };

struct AgentConfig {
  uint64_t learn_seconds = 300;        // learning period before detection starts
  uint32_t window = 100;               // system calls per scored window of a process
  uint32_t min_program_windows = 5;    // programs with fewer learned windows use the global model
  // The per-call stream that the sequence models read.
  SyscallStreamMode syscall_stream = SyscallStreamMode::kBudget;
  // Budget mode: the share of all the host's CPUs the stream may cost while on, 0 < x < 1.
  double syscall_stream_budget = 0.01;
  // Typed events: exec, fork, exit, execve, open, file_mod, net, cred, ptrace, mount.
  std::vector<std::string> events = {"exec",    "fork", "exit", "execve", "open",
                                     "file_mod", "net", "cred", "ptrace", "mount"};
  uint64_t ring_buffer_bytes = uint64_t{4} << 20;  // power of two, >= 4096
  bool write_events = true;            // typed events also go to the sinks (OCSF activity events)
  bool mount_tracefs = true;  // mount tracefs at /sys/kernel/tracing when none is mounted
  std::string baseline;                // default <state_dir>/models/baseline.vgm
  AgentFilterConfig filters;
  AgentGateConfig gate;
};

// The agent's policy (docs/policy.md). Names are checked here; the policy room interprets them.
struct PolicyConfig {
  bool enabled = true;              // evaluate rules on every typed event
  std::vector<std::string> files;   // rules files / one bundle manifest; [] = the embedded rules
  std::string mode = "monitor";     // monitor | enforce (the agent itself only monitors)
  std::string stage = "monitor";    // monitor | enforce-non-critical | enforce-all
  std::string asset_class = "standard";  // critical | standard | non-critical (this host)
  // Actions the agent's enforcement worker may have queued (agent/action_bridge.h); an action
  // that finds the queue full is dropped and counted. 1..kMaxEnforcementQueue.
  uint32_t enforcement_queue = 256;
};
inline constexpr uint32_t kMaxEnforcementQueue = 65536;

// What the agent does with its decisions. In enforce mode it first verifies the signatures of the
// models and policies it loads (and, with attestation.require, a local TPM quote); when any check
// fails it falls back to monitor mode and says why in the audit log.
enum class AgentMode { kMonitor, kEnforce };
// "monitor", "enforce".
std::string_view AgentModeName(AgentMode m);

// Measured loads into a TPM PCR (docs/attestation.md).
struct AttestationConfig {
  std::string tcti;      // tpm2-tss TCTI, e.g. "device:/dev/tpmrm0"; empty: no TPM
  uint32_t pcr = 23;     // 16 or 23 (resettable from locality 0)
  std::string events;    // default <state_dir>/attest/events.json
  bool require = false;  // enforce mode also needs a valid local quote
};

struct VigilConfig {
  std::string host;  // default gethostname()
  std::string state_dir = "/var/lib/vigil";
  AgentMode mode = AgentMode::kMonitor;
  // minisign public keys that models and policies must be signed by in enforce mode; default
  // the host key, <state_dir>/keys/vigil.pub.
  std::vector<std::string> trusted_keys;
  AttestationConfig attestation;
  LogConfig log;
  MetricsConfig metrics;
  PipelineConfig pipeline;
  std::vector<SinkConfig> sinks;  // default: one stdout sink; an explicit [] means none
  ModelConfig model;
  AgentConfig agent;
  PolicyConfig policy;
  // Where the values came from: the source name given to ParseConfig / the path, or
  // "<defaults>".
  std::string source;
};

// The embedded defaults, with the derived paths (spool dir, model path) filled in from state_dir
// and host from gethostname() ("localhost" if that fails).
VigilConfig DefaultConfig();

// Parses and validates a config document. `source_name` names the input in error messages (a
// file name, "<stdin>", ...). An empty document or one holding only `null` yields the defaults;
// a key whose value is empty/null keeps its default. Never throws; every failure is
// kInvalidArgument with the message described at the top of this file.
Result<VigilConfig> ParseConfig(std::string_view yaml_text, std::string_view source_name);

// Reads and parses the file at `path`. When `path` is kDefaultConfigPath and the file does not
// exist, returns DefaultConfig(); any other missing file is kNotFound. Unreadable files are
// kUnavailable, files over kMaxConfigBytes kInvalidArgument; parse errors as ParseConfig().
Result<VigilConfig> LoadConfig(const std::string& path);

// Renders the location prefix used by config (and other YAML input) diagnostics:
//   "<source>:<line>:<column>: <key_path>: <message>"
// `line`/`column` are 1-based; a part that is 0 or empty is left out ("vigil.yaml: msg").
std::string FormatSourceError(std::string_view source, int line, int column,
                              std::string_view key_path, std::string_view message);

}  // namespace vigil::core
