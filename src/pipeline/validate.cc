#include "pipeline/validate.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>

#include "core/syscall_table.h"

namespace vigil::pipeline {
namespace {

using core::Event;
using core::EventKind;

// Most strings of an event are empty (a stream call has no path, address or executable).
bool HasNul(std::string_view s) {
  return !s.empty() && std::memchr(s.data(), '\0', s.size()) != nullptr;
}

bool IsIpLiteral(const std::string& s) {
  in6_addr buf;
  return inet_pton(AF_INET, s.c_str(), &buf) == 1 || inet_pton(AF_INET6, s.c_str(), &buf) == 1;
}

bool KnownSource(core::EventSource s) {
  return static_cast<uint8_t>(s) <= static_cast<uint8_t>(core::EventSource::kSynthetic);
}
bool KnownKind(EventKind k) {
  return static_cast<uint8_t>(k) <= static_cast<uint8_t>(EventKind::kTypedCall);
}
bool KnownArch(core::Arch a) { return a == core::Arch::kI386 || a == core::Arch::kX86_64; }

// Which numbers have a name, per known arch: one load per call (a name lookup per call was
// ~60 instructions, the largest cost left per call of a syscall run).
struct AssignedNumbers {
  std::array<bool, core::kMaxSyscallNr> i386{}, x86_64{};
  AssignedNumbers() {
    for (int nr = 0; nr < core::kMaxSyscallNr; ++nr) {
      i386[static_cast<size_t>(nr)] = !core::SyscallName(core::Arch::kI386, nr).empty();
      x86_64[static_cast<size_t>(nr)] = !core::SyscallName(core::Arch::kX86_64, nr).empty();
    }
  }
};

// The number rules of one call on a known arch.
RejectReason CheckCall(core::Arch arch, int32_t nr) {
  static const AssignedNumbers assigned;
  if (nr < 0 || nr >= core::kMaxSyscallNr) return RejectReason::kSyscallNrOutOfRange;
  const auto& table = arch == core::Arch::kI386 ? assigned.i386 : assigned.x86_64;
  if (!table[static_cast<size_t>(nr)]) return RejectReason::kSyscallNrUnassigned;
  return RejectReason::kNone;
}

}  // namespace

std::string_view RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kNone:
      return "none";
    case RejectReason::kUnknownSource:
      return "unknown_source";
    case RejectReason::kUnknownKind:
      return "unknown_kind";
    case RejectReason::kNegativeTime:
      return "negative_time";
    case RejectReason::kNegativeIngestTime:
      return "negative_ingest_time";
    case RejectReason::kSyscallArchUnknown:
      return "syscall_arch_unknown";
    case RejectReason::kSyscallNrOutOfRange:
      return "syscall_nr_out_of_range";
    case RejectReason::kSyscallNrUnassigned:
      return "syscall_nr_unassigned";
    case RejectReason::kFileOpenMissingPath:
      return "file_open_missing_path";
    case RejectReason::kExecMissingProgram:
      return "exec_missing_program";
    case RejectReason::kNetMissingDaddr:
      return "net_missing_daddr";
    case RejectReason::kNetBadDaddr:
      return "net_bad_daddr";
    case RejectReason::kHostTooLong:
      return "host_too_long";
    case RejectReason::kStreamTooLong:
      return "stream_too_long";
    case RejectReason::kCommTooLong:
      return "comm_too_long";
    case RejectReason::kExeTooLong:
      return "exe_too_long";
    case RejectReason::kPathTooLong:
      return "path_too_long";
    case RejectReason::kEmbeddedNul:
      return "embedded_nul";
    case RejectReason::kRunNotSyscall:
      return "run_not_syscall";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

RejectReason EventValidator::Check(const Event& e) const { return CheckEvent(e, true); }

RejectReason EventValidator::CheckEvent(const Event& e, bool check_calls) const {
  if (!KnownSource(e.source)) return RejectReason::kUnknownSource;
  if (!KnownKind(e.kind)) return RejectReason::kUnknownKind;
  if (e.time_ns < 0) return RejectReason::kNegativeTime;
  if (e.ingest_ns < 0) return RejectReason::kNegativeIngestTime;
  if (!e.syscall_run.empty() && e.kind != EventKind::kSyscall) return RejectReason::kRunNotSyscall;
  switch (e.kind) {
    case EventKind::kSyscall:
    case EventKind::kTypedCall:
      if (!KnownArch(e.syscall.arch)) return RejectReason::kSyscallArchUnknown;
      if (!check_calls) break;
      if (const RejectReason r = CheckCall(e.syscall.arch, e.syscall.nr); r != RejectReason::kNone) {
        return r;
      }
      for (int32_t nr : e.syscall_run) {
        if (const RejectReason r = CheckCall(e.syscall.arch, nr); r != RejectReason::kNone) return r;
      }
      break;
    case EventKind::kFileOpen:
      if (e.path.empty()) return RejectReason::kFileOpenMissingPath;
      break;
    case EventKind::kProcessExec:
      if (e.path.empty() && e.proc.comm.empty()) return RejectReason::kExecMissingProgram;
      break;
    case EventKind::kNetConnect:
      if (e.net.daddr.empty()) return RejectReason::kNetMissingDaddr;
      if (HasNul(e.net.daddr)) return RejectReason::kEmbeddedNul;
      if (!IsIpLiteral(e.net.daddr)) return RejectReason::kNetBadDaddr;
      break;
    case EventKind::kProcessExit:
    case EventKind::kStreamEnd:
    case EventKind::kProcessFork:
      break;
  }
  if (e.host.size() > options_.max_host) return RejectReason::kHostTooLong;
  if (e.stream.size() > options_.max_stream) return RejectReason::kStreamTooLong;
  if (e.proc.comm.size() > options_.max_comm) return RejectReason::kCommTooLong;
  if (e.proc.exe.size() > options_.max_exe) return RejectReason::kExeTooLong;
  if (e.path.size() > options_.max_path) return RejectReason::kPathTooLong;
  if (HasNul(e.host) || HasNul(e.stream) || HasNul(e.proc.comm) || HasNul(e.proc.exe) ||
      HasNul(e.path) || HasNul(e.net.daddr)) {
    return RejectReason::kEmbeddedNul;
  }
  return RejectReason::kNone;
}

RejectReason EventValidator::Validate(const Event& event) {
  return Count(CheckEvent(event, true), core::EventCount(event));
}

RejectReason EventValidator::Count(RejectReason r, size_t events) {
  if (r == RejectReason::kNone) {
    accepted_.fetch_add(events, std::memory_order_relaxed);
  } else {
    rejected_[static_cast<size_t>(r)].fetch_add(events, std::memory_order_relaxed);
  }
  return r;
}

RejectReason EventValidator::ValidateRun(Event* event) {
  std::vector<int32_t>& run = event->syscall_run;
  if (run.empty() || event->kind != EventKind::kSyscall || !KnownArch(event->syscall.arch)) {
    return Validate(*event);
  }
  size_t kept = 0;
  RejectReason first = RejectReason::kNone;
  for (int32_t nr : run) {
    const RejectReason r = CheckCall(event->syscall.arch, nr);
    if (r == RejectReason::kNone) {
      run[kept++] = nr;
      continue;
    }
    rejected_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
    if (first == RejectReason::kNone) first = r;
  }
  if (kept == 0) return first;  // every call counted under its reason; the run is unchanged
  run.resize(kept);
  event->syscall.nr = run.back();
  return Count(CheckEvent(*event, false), kept);
}

ValidatorStats EventValidator::Stats() const {
  ValidatorStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kRejectReasonCount; ++i) {
    s.by_reason[i] = rejected_[i].load(std::memory_order_relaxed);
    s.rejected += s.by_reason[i];
  }
  return s;
}

std::string DescribeReject(RejectReason reason, const Event& e) {
  std::string m = "event source=";
  m += core::EventSourceName(e.source);
  m += " kind=";
  m += core::EventKindName(e.kind);
  m += " seq=" + std::to_string(e.seq);
  if (!e.stream.empty() && e.stream.size() <= 512 && !HasNul(e.stream)) {
    m += " stream='" + e.stream + "'";
  }
  m += ": ";
  m += RejectReasonName(reason);
  switch (reason) {
    case RejectReason::kSyscallNrOutOfRange:
    case RejectReason::kSyscallNrUnassigned:
      m += " (arch ";
      m += core::ArchName(e.syscall.arch);
      m += " nr " + std::to_string(e.syscall.nr) + ")";
      break;
    case RejectReason::kNegativeTime:
      m += " (time_ns " + std::to_string(e.time_ns) + ")";
      break;
    case RejectReason::kNetBadDaddr:
      if (e.net.daddr.size() <= 64) m += " (daddr '" + e.net.daddr + "')";
      break;
    default:
      break;
  }
  return m;
}

}  // namespace vigil::pipeline
