#pragma once

// EventValidator: the schema check every core::Event passes before the pipeline accepts it.
// Sensors decode outside input (kernel ring buffers, recorded files, MQTT payloads); this is the
// one place that says what a well-formed event is, so that later stages may rely on it (a
// syscall's name exists, a path is present, strings are bounded and hold no NUL bytes).
//
// Validation builds no strings: it returns a reason and counts it. DescribeReject() renders a
// message for the rare event that is logged.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/event.h"

namespace vigil::pipeline {

enum class RejectReason : uint8_t {
  kNone = 0,             // valid
  kUnknownSource,        // source is not an EventSource value
  kUnknownKind,          // kind is not an EventKind value
  kNegativeTime,         // time_ns < 0
  kNegativeIngestTime,   // ingest_ns < 0
  kSyscallArchUnknown,   // kSyscall with arch kUnknown or not an Arch value
  kSyscallNrOutOfRange,  // kSyscall with nr outside [0, core::kMaxSyscallNr)
  kSyscallNrUnassigned,  // kSyscall whose nr has no name on its arch
  kFileOpenMissingPath,  // kFileOpen with an empty path
  kExecMissingProgram,   // kProcessExec with neither path nor proc.comm
  kNetMissingDaddr,      // kNetConnect with an empty daddr
  kNetBadDaddr,          // kNetConnect whose daddr is not an IPv4/IPv6 literal
  kHostTooLong,
  kStreamTooLong,
  kCommTooLong,
  kExeTooLong,
  kPathTooLong,
  kEmbeddedNul,  // a NUL byte inside host, stream, comm, exe, path or daddr
  kRunNotSyscall,  // a syscall_run on an event whose kind is not kSyscall
  kCount,        // not a reason: the number of enumerators
};
inline constexpr size_t kRejectReasonCount = static_cast<size_t>(RejectReason::kCount);

// Stable snake_case name ("syscall_nr_out_of_range"), for metric labels and logs.
std::string_view RejectReasonName(RejectReason r);

// Length bounds in bytes. The defaults fit every real source (TASK_COMM_LEN is 16, PATH_MAX 4096)
// with room for recorded datasets that name streams after files.
struct ValidatorOptions {
  size_t max_host = 255;
  size_t max_stream = 512;
  size_t max_comm = 64;
  size_t max_exe = 4096;
  size_t max_path = 4096;
};

struct ValidatorStats {
  uint64_t accepted = 0;
  uint64_t rejected = 0;                                 // sum of by_reason
  std::array<uint64_t, kRejectReasonCount> by_reason{};  // index: RejectReason; [kNone] is 0
};

// Thread-safe: Validate may run on many threads; counters are relaxed atomics.
class EventValidator {
 public:
  explicit EventValidator(ValidatorOptions options = {}) : options_(options) {}
  EventValidator(const EventValidator&) = delete;
  EventValidator& operator=(const EventValidator&) = delete;

  // A rule `event` breaks, or kNone when it breaks none. Counts nothing. An event with a
  // syscall_run breaks the number rules when any call of the run does.
  RejectReason Check(const core::Event& event) const;
  // Check() plus counting: accepted, or rejected under the returned reason, once per event
  // the event stands for (core::EventCount: each call of a syscall_run).
  RejectReason Validate(const core::Event& event);
  // As Validate, except that the calls of a syscall_run whose number is out of range or
  // unassigned are removed from the run (syscall.nr follows its new last call) and counted
  // under their reason one by one, so one bad call does not cost the run's good ones. Returns
  // kNone when calls that pass remain; when none do, the reason of the first and the run is
  // left as it was (the caller skips the event).
  RejectReason ValidateRun(core::Event* event);

  ValidatorStats Stats() const;
  const ValidatorOptions& options() const { return options_; }

 private:
  // `check_calls` false: the syscall number rules are skipped (ValidateRun checked them).
  RejectReason CheckEvent(const core::Event& event, bool check_calls) const;
  RejectReason Count(RejectReason r, size_t events);

  ValidatorOptions options_;
  std::atomic<uint64_t> accepted_{0};
  std::array<std::atomic<uint64_t>, kRejectReasonCount> rejected_{};
};

// "event source=ebpf kind=syscall seq=42 stream='x': syscall_nr_out_of_range (arch x86_64 nr
// 999)"; for logging a rejected event. Off the hot path: builds a string.
std::string DescribeReject(RejectReason reason, const core::Event& event);

}  // namespace vigil::pipeline
