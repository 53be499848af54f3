#pragma once

// The plain value types that stages pass to each other: Event (what happened), Verdict (what a
// model thinks of it) and Decision (what policy does about it). No stage sees another's
// internals; these are the whole contract. Schema: docs/event-schema.md, proto/vigil/v1/.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::core {

inline constexpr std::string_view kEventSchemaVersion = "vigil.event/v1";

enum class EventSource : uint8_t { kReplay, kEbpf, kFanotify, kSeccomp, kMqtt, kModbus, kSynthetic };
enum class EventKind : uint8_t {
  kSyscall,       // one system call; payload: syscall
  kProcessExec,   // a program started; payload: proc (+ args)
  kProcessExit,
  kFileOpen,      // payload: path
  kNetConnect,    // payload: net
  kStreamEnd,     // the recorded stream (e.g. one ADFA-LD trace) ended; no payload
  kProcessFork,   // proc forked a new process; payload: child_pid
  kTypedCall,     // a system call reported with its arguments (a typed record), not part of the
                  // per-call stream that sequence models read; payload: syscall (+ path/net)
};
// Instruction-set numbering of a syscall number.
enum class Arch : uint8_t { kUnknown, kI386, kX86_64 };

std::string_view EventSourceName(EventSource s);
std::string_view EventKindName(EventKind k);
std::string_view ArchName(Arch a);
// Inverse lookups; false when the name is unknown.
bool ParseEventSource(std::string_view name, EventSource* out);
bool ParseEventKind(std::string_view name, EventKind* out);
bool ParseArch(std::string_view name, Arch* out);

inline constexpr uint32_t kNoLoginUid = 0xFFFFFFFFu;  // the kernel's "unset" (-1)

// Event::flags of a kProcessExec event.
inline constexpr uint32_t kExecFromMemfd = 1u << 0;  // the executable is a memfd (memfd_create)

struct ProcessIdentity {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  std::string comm;  // short program name (the key of per-program models)
  std::string exe;   // executable path when known
  // Read by the sensor at exec (kProcessExec); absent otherwise unless an enricher fills them.
  uint32_t loginuid = kNoLoginUid;  // audit login uid; kNoLoginUid when unset or unknown
  uint32_t tty = 0;                 // controlling terminal (major << 20 | minor); 0 when none
  bool has_caps = false;
  uint64_t cap_effective = 0;       // capability bits (CAP_* numbers)
  uint64_t cap_permitted = 0;
};

struct SyscallPayload {
  Arch arch = Arch::kUnknown;
  int32_t nr = -1;  // number in `arch`'s table
};

struct NetPayload {
  std::string daddr;
  uint16_t dport = 0;
  uint8_t protocol = 0;  // IPPROTO_*
};

struct Event {
  EventSource source = EventSource::kSynthetic;
  EventKind kind = EventKind::kSyscall;
  uint64_t seq = 0;          // per-source sequence number, starting at 1
  int64_t time_ns = 0;       // when it happened (Unix ns; 0 when the recording has no time)
  int64_t ingest_ns = 0;     // when Vigil accepted it (monotonic ns)
  std::string host;
  std::string stream;        // groups events of one recorded trace / one process lifetime
  ProcessIdentity proc;
  uint64_t cgroup_id = 0;    // the process's cgroup v2 id (kernel); 0 when unknown
  SyscallPayload syscall;    // kind == kSyscall
  std::string path;          // kind == kFileOpen / kProcessExec
  NetPayload net;            // kind == kNetConnect
  uint32_t child_pid = 0;    // kind == kProcessFork
  // Arguments of typed calls, as the sensor recorded them (0/empty when not carried):
  uint32_t flags = 0;        // open*/execveat/unlinkat/renameat2/linkat flags; exec: kExec* bits
  uint32_t mode = 0;         // open* creation mode
  std::string path2;         // rename*/link*: the new path; symlink*: the link; mount: the source
  std::array<uint64_t, 4> args{};  // ptrace: request, pid, addr, data; setuid family: the ids;
                                   // socket: domain, type, protocol
  bool has_ret = false;      // the call's return value is known
  int64_t ret = 0;           // return value; negative errno on failure
  // kind == kSyscall only, and only from a sensor asked to deliver the per-call stream in runs
  // (the eBPF sensor in `vigil agent`, EbpfOptions::syscall_runs): when not empty, this one
  // event stands for consecutive calls of one thread (proc.tid), oldest first, all numbered in
  // syscall.arch. syscall.nr, ret and time_ns are then those of the last call; seq is the last
  // call's (the run's calls had seq - size + 1 .. seq). Empty: the event is one call. Not
  // serialised (event JSON, protobuf): runs exist only between the sensor and the agent's
  // sequence models.
  std::vector<int32_t> syscall_run;
};

// How many events `e` stands for: the calls of its syscall_run, else 1.
inline size_t EventCount(const Event& e) {
  return e.syscall_run.empty() ? 1 : e.syscall_run.size();
}

// One piece of evidence behind a score: e.g. an n-gram "open read mmap2" with its surprisal.
struct Evidence {
  std::string what;
  double weight = 0.0;  // larger means it contributed more
};

struct Verdict {
  double score = 0.0;       // in [0,1]; >= threshold means anomalous
  bool anomalous = false;
  std::string model_name;
  std::string model_version;
  std::string subject;      // the program (comm or executable) the model scored
  uint32_t uid = 0;
  std::string stream;       // the stream the verdict is about
  std::string host;
  uint32_t pid = 0;
  uint64_t events = 0;      // events that contributed
  int64_t time_ns = 0;
  std::vector<Evidence> explanation;  // most important first
};

enum class Action : uint8_t { kAllow, kAlert, kDeny, kKill, kFreeze, kBlockNetwork, kEscalate };
std::string_view ActionName(Action a);

struct Decision {
  Action action = Action::kAllow;
  std::string rule;      // rule that produced it ("" for the default)
  std::string reason;
  bool enforced = false; // false in monitor mode
  Verdict verdict;
};

}  // namespace vigil::core
