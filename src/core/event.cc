#include "core/event.h"

#include "core/name_table.h"

#include <array>
#include <utility>

namespace vigil::core {
namespace {

constexpr std::array<std::pair<EventSource, std::string_view>, 7> kSources{{
    {EventSource::kReplay, "replay"},
    {EventSource::kEbpf, "ebpf"},
    {EventSource::kFanotify, "fanotify"},
    {EventSource::kSeccomp, "seccomp"},
    {EventSource::kMqtt, "mqtt"},
    {EventSource::kModbus, "modbus"},
    {EventSource::kSynthetic, "synthetic"},
}};
constexpr std::array<std::pair<EventKind, std::string_view>, 8> kKinds{{
    {EventKind::kSyscall, "syscall"},
    {EventKind::kProcessExec, "process_exec"},
    {EventKind::kProcessExit, "process_exit"},
    {EventKind::kFileOpen, "file_open"},
    {EventKind::kNetConnect, "net_connect"},
    {EventKind::kStreamEnd, "stream_end"},
    {EventKind::kProcessFork, "process_fork"},
    {EventKind::kTypedCall, "typed_call"},
}};
constexpr std::array<std::pair<Arch, std::string_view>, 3> kArchs{{
    {Arch::kUnknown, "unknown"},
    {Arch::kI386, "i386"},
    {Arch::kX86_64, "x86_64"},
}};

}  // namespace

std::string_view EventSourceName(EventSource s) { return NameOf(kSources, s); }
std::string_view EventKindName(EventKind k) { return NameOf(kKinds, k); }
std::string_view ArchName(Arch a) { return NameOf(kArchs, a); }
bool ParseEventSource(std::string_view name, EventSource* out) { return ParseName(kSources, name, out); }
bool ParseEventKind(std::string_view name, EventKind* out) { return ParseName(kKinds, name, out); }
bool ParseArch(std::string_view name, Arch* out) { return ParseName(kArchs, name, out); }

std::string_view ActionName(Action a) {
  switch (a) {
    case Action::kAllow: return "allow";
    case Action::kAlert: return "alert";
    case Action::kDeny: return "deny";
    case Action::kKill: return "kill";
    case Action::kFreeze: return "freeze";
    case Action::kBlockNetwork: return "block-network";
    case Action::kEscalate: return "escalate";
  }
  return "unknown";
}

}  // namespace vigil::core
