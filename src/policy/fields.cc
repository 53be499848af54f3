#include "policy/fields.h"

#include <cstring>

#include "core/syscall_table.h"

namespace vigil::policy {
namespace {

using core::EventKind;

const core::Event& Ev(const EvalInput& in) { return *in.event; }

bool IsFileEvent(const core::Event& e) { return !e.path.empty() && e.kind != EventKind::kProcessExec; }
bool IsNetEvent(const core::Event& e) { return !e.net.daddr.empty(); }

std::string Joined(const std::vector<std::string>& v, size_t from) {
  std::string out;
  for (size_t i = from; i < v.size(); ++i) {
    if (i > from) out.push_back(' ');
    out += v[i];
  }
  return out;
}

// Falco's proc.cmdline: the name followed by the arguments.
std::string CmdLine(const std::string& name, const std::vector<std::string>& argv) {
  std::string args = Joined(argv, 1);
  return args.empty() ? name : name + " " + args;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void SetIf(FieldValue* out, const std::string& s) {
  if (!s.empty()) out->Set(s);
}

// proc.aname-style fields: index 0 is the process itself, 1 its parent, ...; without an index,
// every ancestor (not the process itself).
template <typename Get>
void Ancestors(const EvalInput& in, int index, FieldValue* out, Get get, const std::string& self) {
  if (index == 0) {
    SetIf(out, self);
    return;
  }
  if (index > 0) {
    if (static_cast<size_t>(index) <= in.ancestors.size()) SetIf(out, get(in.ancestors[index - 1]));
    return;
  }
  for (const Ancestor& a : in.ancestors) {
    std::string v = get(a);
    if (v.empty()) continue;
    out->present = true;
    out->strs.push_back(std::move(v));
  }
}

const std::vector<FieldDef> kFields = {
    {"evt.type", FieldType::kString, ArgUse::kNone, "system call name (execve, openat, connect, ...)",
     [](const EvalInput& in, int, FieldValue* out) { out->Set(EventTypeName(Ev(in))); }},
    {"evt.dir", FieldType::kString, ArgUse::kNone,
     "'<': Vigil reports calls on their return, with the result",
     [](const EvalInput&, int, FieldValue* out) { out->Set("<"); }},
    {"evt.num", FieldType::kNumber, ArgUse::kNone, "the event's sequence number",
     [](const EvalInput& in, int, FieldValue* out) {
       out->SetNumber(static_cast<double>(Ev(in).seq));
     }},
    {"evt.hostname", FieldType::kString, ArgUse::kNone, "the host the event happened on",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, Ev(in).host); }},
    {"evt.res", FieldType::kString, ArgUse::kNone,
     "SUCCESS, or the errno name (ENOENT, EACCES, ...) of a failed call",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (!e.has_ret) return;
       if (e.ret >= 0) {
         out->Set("SUCCESS");
         return;
       }
       const char* name = strerrorname_np(static_cast<int>(-e.ret));
       out->Set(name != nullptr ? name : "E" + std::to_string(-e.ret));
     }},
    {"evt.rawres", FieldType::kNumber, ArgUse::kNone, "the call's return value",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).has_ret) out->SetNumber(static_cast<double>(Ev(in).ret));
     }},
    {"evt.failed", FieldType::kBool, ArgUse::kNone, "true when the call returned an error",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).has_ret) out->Set(Ev(in).ret < 0 ? "true" : "false");
     }},
    {"proc.name", FieldType::kString, ArgUse::kNone, "the process's name (comm)",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, Ev(in).proc.comm); }},
    {"proc.exe", FieldType::kString, ArgUse::kNone, "argv[0] (the executable path when unknown)",
     [](const EvalInput& in, int, FieldValue* out) {
       SetIf(out, !in.argv.empty() ? in.argv[0] : Ev(in).proc.exe);
     }},
    {"proc.exepath", FieldType::kString, ArgUse::kNone, "the executable's full path",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, Ev(in).proc.exe); }},
    {"proc.args", FieldType::kString, ArgUse::kNone, "the arguments, space-separated (no argv[0])",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!in.argv.empty()) out->Set(Joined(in.argv, 1));
     }},
    {"proc.cmdline", FieldType::kString, ArgUse::kNone, "the name followed by the arguments",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!Ev(in).proc.comm.empty()) out->Set(CmdLine(Ev(in).proc.comm, in.argv));
     }},
    {"proc.pid", FieldType::kNumber, ArgUse::kNone, "process id",
     [](const EvalInput& in, int, FieldValue* out) { out->SetNumber(Ev(in).proc.pid); }},
    {"proc.ppid", FieldType::kNumber, ArgUse::kNone, "parent process id",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).proc.ppid != 0) out->SetNumber(Ev(in).proc.ppid);
     }},
    {"proc.pname", FieldType::kString, ArgUse::kNone, "the parent's name",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!in.ancestors.empty()) SetIf(out, in.ancestors[0].name);
     }},
    {"proc.pexe", FieldType::kString, ArgUse::kNone, "the parent's argv[0]",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.ancestors.empty()) return;
       const Ancestor& p = in.ancestors[0];
       SetIf(out, !p.argv.empty() ? p.argv[0] : p.exe);
     }},
    {"proc.pexepath", FieldType::kString, ArgUse::kNone, "the parent's executable path",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!in.ancestors.empty()) SetIf(out, in.ancestors[0].exe);
     }},
    {"proc.pcmdline", FieldType::kString, ArgUse::kNone, "the parent's name and arguments",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!in.ancestors.empty() && !in.ancestors[0].name.empty()) {
         out->Set(CmdLine(in.ancestors[0].name, in.ancestors[0].argv));
       }
     }},
    {"proc.aname", FieldType::kString, ArgUse::kOptionalIndex,
     "[N]: the name of the Nth ancestor (0 the process, 1 its parent); without N: any ancestor",
     [](const EvalInput& in, int index, FieldValue* out) {
       Ancestors(in, index, out, [](const Ancestor& a) { return a.name; }, Ev(in).proc.comm);
     }},
    {"proc.aexepath", FieldType::kString, ArgUse::kOptionalIndex,
     "[N]: the executable path of the Nth ancestor; without N: any ancestor",
     [](const EvalInput& in, int index, FieldValue* out) {
       Ancestors(in, index, out, [](const Ancestor& a) { return a.exe; }, Ev(in).proc.exe);
     }},
    {"user.uid", FieldType::kNumber, ArgUse::kNone, "the effective user id",
     [](const EvalInput& in, int, FieldValue* out) { out->SetNumber(Ev(in).proc.uid); }},
    {"user.name", FieldType::kString, ArgUse::kNone, "the user's name",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.user_name); }},
    {"container.id", FieldType::kString, ArgUse::kNone, "the container id; \"host\" outside one",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.container_id); }},
    {"fd.name", FieldType::kString, ArgUse::kNone, "the file's path",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) out->Set(Ev(in).path);
     }},
    {"fd.directory", FieldType::kString, ArgUse::kNone, "the file's directory",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) SetIf(out, DirName(Ev(in).path));
     }},
    {"fd.filename", FieldType::kString, ArgUse::kNone, "the file's name without its directory",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) SetIf(out, BaseName(Ev(in).path));
     }},
    {"fd.typechar", FieldType::kString, ArgUse::kNone, "f (file), 4 (IPv4) or 6 (IPv6)",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (IsNetEvent(e)) {
         out->Set(e.net.daddr.find(':') != std::string::npos ? "6" : "4");
       } else if (IsFileEvent(e)) {
         out->Set("f");
       }
     }},
    {"fd.type", FieldType::kString, ArgUse::kNone, "file, ipv4 or ipv6",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (IsNetEvent(e)) {
         out->Set(e.net.daddr.find(':') != std::string::npos ? "ipv6" : "ipv4");
       } else if (IsFileEvent(e)) {
         out->Set("file");
       }
     }},
    {"fd.sip", FieldType::kString, ArgUse::kNone, "the server's address (a connection's destination)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->Set(Ev(in).net.daddr);
     }},
    {"fd.sport", FieldType::kNumber, ArgUse::kNone, "the server's port",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->SetNumber(Ev(in).net.dport);
     }},
    {"fd.rip", FieldType::kString, ArgUse::kNone, "the remote address",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->Set(Ev(in).net.daddr);
     }},
    {"fd.rport", FieldType::kNumber, ArgUse::kNone, "the remote port",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->SetNumber(Ev(in).net.dport);
     }},
    {"fd.l4proto", FieldType::kString, ArgUse::kNone, "tcp, udp or icmp",
     [](const EvalInput& in, int, FieldValue* out) {
       switch (Ev(in).net.protocol) {
         case 6: out->Set("tcp"); break;
         case 17: out->Set("udp"); break;
         case 1: case 58: out->Set("icmp"); break;
         default: break;
       }
     }},
    {"ml.score", FieldType::kNumber, ArgUse::kNone, "the model's score of the process, 0..1",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict != nullptr) out->SetNumber(in.verdict->score);
     }},
    {"ml.anomalous", FieldType::kBool, ArgUse::kNone, "true when the score reached the threshold",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict != nullptr) out->Set(in.verdict->anomalous ? "true" : "false");
     }},
    {"ml.model", FieldType::kString, ArgUse::kNone, "the scoring model's name",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict != nullptr) SetIf(out, in.verdict->model_name);
     }},
    {"ml.explain", FieldType::kString, ArgUse::kNone, "the explanation, evidence joined by \"; \"",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict == nullptr) return;
       std::string s;
       for (const core::Evidence& ev : in.verdict->explanation) {
         if (!s.empty()) s += "; ";
         s += ev.what;
       }
       out->Set(std::move(s));
     }},
    {"asset.class", FieldType::kString, ArgUse::kNone, "the asset class from the inventory",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.asset_class); }},
};

}  // namespace

const std::vector<FieldDef>& Fields() { return kFields; }

const FieldDef* FindField(std::string_view name) {
  for (const FieldDef& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string EventTypeName(const core::Event& e) {
  switch (e.kind) {
    case EventKind::kSyscall:
    case EventKind::kTypedCall:
      return std::string(core::SyscallName(e.syscall.arch, e.syscall.nr));
    case EventKind::kProcessExec:
      return "execve";
    case EventKind::kFileOpen:
      return "openat";
    case EventKind::kNetConnect:
      return "connect";
    case EventKind::kProcessFork:
      return "clone";
    case EventKind::kProcessExit:
      return "procexit";
    case EventKind::kStreamEnd:
      break;
  }
  return "";
}

}  // namespace vigil::policy
