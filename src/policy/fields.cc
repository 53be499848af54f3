#include "policy/fields.h"

#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

#include "core/syscall_table.h"

namespace vigil::policy {
namespace {

using core::EventKind;

const core::Event& Ev(const EvalInput& in) { return *in.event; }

bool IsFileEvent(const core::Event& e) { return !e.path.empty() && e.kind != EventKind::kProcessExec; }
bool IsNetEvent(const core::Event& e) { return !e.net.daddr.empty(); }

constexpr int32_t kNrSocket = 41, kNrConnect = 42, kNrPtrace = 101, kNrLink = 86, kNrSymlink = 88,
                  kNrLinkat = 265, kNrSymlinkat = 266, kNrRename = 82, kNrRenameat = 264,
                  kNrRenameat2 = 316;

// The x86_64 number of a typed call (-1 for other events).
int32_t TypedNr(const core::Event& e) {
  if (e.kind != EventKind::kTypedCall || e.syscall.arch != core::Arch::kX86_64) return -1;
  return e.syscall.nr;
}

// A connect to a Unix socket: the gates report its path, with no address.
bool IsUnixConnect(const core::Event& e) {
  return e.net.daddr.empty() && !e.path.empty() &&
         (e.kind == EventKind::kNetConnect || TypedNr(e) == kNrConnect);
}

bool IsOpen(const core::Event& e) { return e.kind == EventKind::kFileOpen; }

// True when `path` is absolute and already normal: no empty, "." or ".." component and no
// trailing slash (except "/" itself), so normalising it would return it unchanged. Looks only
// at what follows each '/' (evaluated for every file event: no substring per component).
bool IsNormalAbsolute(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  const size_t n = path.size();
  if (n == 1) return true;
  if (path[n - 1] == '/') return false;
  const char* const end = path.data() + n;
  for (const char* slash = path.data(); slash != nullptr;
       slash = static_cast<const char*>(std::memchr(slash + 1, '/', static_cast<size_t>(end - slash - 1)))) {
    const char* c = slash + 1;  // before `end`: the path does not end with '/'
    if (*c == '/') return false;
    if (*c == '.') {
      if (c + 1 == end || c[1] == '/') return false;
      if (c[1] == '.' && (c + 2 == end || c[2] == '/')) return false;
    }
  }
  return true;
}

// Appends the components of `s` to the normalised path in `out`: empty and "." components
// dropped, ".." pops one (never above "/").
void AppendComponents(std::string_view s, std::string* out) {
  while (!s.empty()) {
    const size_t slash = s.find('/');
    const std::string_view part = s.substr(0, slash);
    s = slash == std::string_view::npos ? std::string_view() : s.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      const size_t last = out->find_last_of('/');
      out->resize(last == std::string::npos ? 0 : last);
      continue;
    }
    out->push_back('/');
    out->append(part);
  }
}

// Lexically normalised absolute path: "." and empty components dropped, ".." pops one (never
// above "/"). `path` relative: joined to `cwd` first (left relative when cwd is unknown). The
// result views `path` when it is already normal, else `*buf`.
std::string_view Normalize(const std::string& path, const std::string& cwd, std::string* buf) {
  if (IsNormalAbsolute(path)) return path;
  const bool absolute = !path.empty() && path[0] == '/';
  if (!absolute && (cwd.empty() || cwd[0] != '/')) return path;
  buf->clear();
  if (!absolute) AppendComponents(cwd, buf);
  AppendComponents(path, buf);
  if (buf->empty()) buf->push_back('/');
  return *buf;
}

// Falco's rendering of open flags: "O_RDWR|O_CREAT|O_TRUNC" (access mode first).
void OpenFlags(uint32_t flags, std::string* out) {
  static constexpr std::pair<uint32_t, const char*> kBits[] = {
      {O_CREAT, "O_CREAT"},         {O_EXCL, "O_EXCL"},         {O_NOCTTY, "O_NOCTTY"},
      {O_TRUNC, "O_TRUNC"},         {O_APPEND, "O_APPEND"},     {O_NONBLOCK, "O_NONBLOCK"},
      {O_DSYNC, "O_DSYNC"},         {O_DIRECT, "O_DIRECT"},     {O_LARGEFILE, "O_LARGEFILE"},
      {O_DIRECTORY, "O_DIRECTORY"}, {O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"},
      {O_CLOEXEC, "O_CLOEXEC"},     {O_PATH, "O_PATH"},         {O_TMPFILE & ~O_DIRECTORY, "O_TMPFILE"},
  };
  switch (flags & O_ACCMODE) {
    case O_RDONLY: out->append("O_RDONLY"); break;
    case O_WRONLY: out->append("O_WRONLY"); break;
    default: out->append("O_RDWR"); break;
  }
  for (const auto& [bit, name] : kBits) {
    if ((flags & bit) == bit) {
      out->push_back('|');
      out->append(name);
    }
  }
}

std::string PtraceRequest(uint64_t r) {
  switch (r) {
    case PTRACE_TRACEME: return "PTRACE_TRACEME";
    case PTRACE_PEEKTEXT: return "PTRACE_PEEKTEXT";
    case PTRACE_PEEKDATA: return "PTRACE_PEEKDATA";
    case PTRACE_PEEKUSER: return "PTRACE_PEEKUSR";
    case PTRACE_POKETEXT: return "PTRACE_POKETEXT";
    case PTRACE_POKEDATA: return "PTRACE_POKEDATA";
    case PTRACE_POKEUSER: return "PTRACE_POKEUSR";
    case PTRACE_CONT: return "PTRACE_CONT";
    case PTRACE_KILL: return "PTRACE_KILL";
    case PTRACE_SINGLESTEP: return "PTRACE_SINGLESTEP";
    case PTRACE_GETREGS: return "PTRACE_GETREGS";
    case PTRACE_SETREGS: return "PTRACE_SETREGS";
    case PTRACE_ATTACH: return "PTRACE_ATTACH";
    case PTRACE_DETACH: return "PTRACE_DETACH";
    case PTRACE_SYSCALL: return "PTRACE_SYSCALL";
    case PTRACE_SETOPTIONS: return "PTRACE_SETOPTIONS";
    case PTRACE_SEIZE: return "PTRACE_SEIZE";
    case PTRACE_INTERRUPT: return "PTRACE_INTERRUPT";
    default: return "PTRACE_" + std::to_string(r);
  }
}

std::string SocketDomain(uint64_t d) {
  switch (d) {
    case AF_UNIX: return "AF_UNIX";
    case AF_INET: return "AF_INET";
    case AF_INET6: return "AF_INET6";
    case AF_NETLINK: return "AF_NETLINK";
    case AF_PACKET: return "AF_PACKET";
    default: return "AF_" + std::to_string(d);
  }
}

// "CAP_CHOWN CAP_DAC_OVERRIDE ..." for the set bits of a capability set.
std::string CapNames(uint64_t caps) {
  static constexpr const char* kNames[] = {
      "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
      "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
      "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
      "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
      "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
  std::string out;
  for (size_t i = 0; i < 64; ++i) {
    if (((caps >> i) & 1u) == 0) continue;
    if (!out.empty()) out.push_back(' ');
    out += i < std::size(kNames) ? kNames[i] : "CAP_" + std::to_string(i);
  }
  return out;
}

void SetBool(FieldValue* out, bool v) {
  out->Set(v ? std::string_view("true") : std::string_view("false"));
}

// v[from..] joined by blanks, appended to `out`.
void AppendJoined(const std::vector<std::string>& v, size_t from, std::string* out) {
  for (size_t i = from; i < v.size(); ++i) {
    if (i > from) out->push_back(' ');
    out->append(v[i]);
  }
}

// Falco's proc.cmdline: the name followed by the arguments.
void SetCmdLine(const std::string& name, const std::vector<std::string>& argv, FieldValue* out) {
  std::string& s = out->Own();
  s.append(name);
  if (argv.size() > 1) {
    const size_t before = s.size();
    s.push_back(' ');
    AppendJoined(argv, 1, &s);
    if (s.size() == before + 1) s.resize(before);  // only empty arguments: no trailing blank
  }
  out->SetOwn();
}

// The position of the last '/' in `path`, or npos.
size_t LastSlash(std::string_view path) {
  const void* at = path.empty() ? nullptr : memrchr(path.data(), '/', path.size());
  return at == nullptr ? std::string_view::npos
                       : static_cast<size_t>(static_cast<const char*>(at) - path.data());
}

std::string_view DirName(std::string_view path) {
  const size_t slash = LastSlash(path);
  if (slash == std::string_view::npos) return {};
  return slash == 0 ? std::string_view("/") : path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  const size_t slash = LastSlash(path);
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

void SetIf(FieldValue* out, std::string_view s) {
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
    const std::string& v = get(a);
    if (v.empty()) continue;
    out->present = true;
    out->strs.push_back(v);
  }
}

const std::vector<FieldDef> kFields = {
    {"evt.type", FieldType::kString, ArgUse::kNone, "system call name (execve, openat, connect, ...)",
     [](const EvalInput& in, int, FieldValue* out) { out->Set(EventTypeView(Ev(in))); }},
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
       if (const char* name = strerrorname_np(static_cast<int>(-e.ret)); name != nullptr) {
         out->Set(name);
       } else {
         out->Own() = "E" + std::to_string(-e.ret);
         out->SetOwn();
       }
     }},
    {"evt.rawres", FieldType::kNumber, ArgUse::kNone, "the call's return value",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).has_ret) out->SetNumber(static_cast<double>(Ev(in).ret));
     }},
    {"evt.failed", FieldType::kBool, ArgUse::kNone, "true when the call returned an error",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).has_ret) SetBool(out, Ev(in).ret < 0);
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
       if (in.argv.empty()) return;
       AppendJoined(in.argv, 1, &out->Own());
       out->SetOwn();
     }},
    {"proc.cmdline", FieldType::kString, ArgUse::kNone, "the name followed by the arguments",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!Ev(in).proc.comm.empty()) SetCmdLine(Ev(in).proc.comm, in.argv, out);
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
         SetCmdLine(in.ancestors[0].name, in.ancestors[0].argv, out);
       }
     }},
    {"proc.aname", FieldType::kString, ArgUse::kOptionalIndex,
     "[N]: the name of the Nth ancestor (0 the process, 1 its parent); without N: any ancestor",
     [](const EvalInput& in, int index, FieldValue* out) {
       Ancestors(in, index, out, [](const Ancestor& a) -> const std::string& { return a.name; }, Ev(in).proc.comm);
     }},
    {"proc.aexepath", FieldType::kString, ArgUse::kOptionalIndex,
     "[N]: the executable path of the Nth ancestor; without N: any ancestor",
     [](const EvalInput& in, int index, FieldValue* out) {
       Ancestors(in, index, out, [](const Ancestor& a) -> const std::string& { return a.exe; }, Ev(in).proc.exe);
     }},
    {"proc.cwd", FieldType::kString, ArgUse::kNone, "the process's working directory",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.cwd); }},
    {"proc.tty", FieldType::kNumber, ArgUse::kNone,
     "the controlling terminal (major << 20 | minor); 0 without one",
     [](const EvalInput& in, int, FieldValue* out) { out->SetNumber(Ev(in).proc.tty); }},
    {"proc.duration", FieldType::kNumber, ArgUse::kNone, "ns since the process started",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.proc_start_time_ns > 0 && Ev(in).time_ns >= in.proc_start_time_ns) {
         out->SetNumber(static_cast<double>(Ev(in).time_ns - in.proc_start_time_ns));
       }
     }},
    {"proc.is_exe_from_memfd", FieldType::kBool, ArgUse::kNone,
     "exec: true when the program runs from a memfd (memfd_create, fileless)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (Ev(in).kind == EventKind::kProcessExec) {
         SetBool(out, (Ev(in).flags & core::kExecFromMemfd) != 0);
       }
     }},
    {"thread.cap_effective", FieldType::kString, ArgUse::kNone,
     "effective capabilities (CAP_SYS_ADMIN CAP_NET_RAW ...)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!Ev(in).proc.has_caps) return;
       out->Own() = CapNames(Ev(in).proc.cap_effective);
       out->SetOwn();
     }},
    {"thread.cap_permitted", FieldType::kString, ArgUse::kNone, "permitted capabilities",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!Ev(in).proc.has_caps) return;
       out->Own() = CapNames(Ev(in).proc.cap_permitted);
       out->SetOwn();
     }},
    {"user.loginuid", FieldType::kNumber, ArgUse::kNone,
     "the audit login uid (the user who logged in); -1 when unset",
     [](const EvalInput& in, int, FieldValue* out) {
       const uint32_t l = Ev(in).proc.loginuid;
       out->SetNumber(l == core::kNoLoginUid ? -1.0 : static_cast<double>(l));
     }},
    {"user.uid", FieldType::kNumber, ArgUse::kNone, "the effective user id",
     [](const EvalInput& in, int, FieldValue* out) { out->SetNumber(Ev(in).proc.uid); }},
    {"user.name", FieldType::kString, ArgUse::kNone, "the user's name",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.user_name); }},
    {"container.id", FieldType::kString, ArgUse::kNone, "the container id; \"host\" outside one",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.container_id); }},
    {"container.image.repository", FieldType::kString, ArgUse::kNone,
     "the container image without tag or digest (docker.io/library/nginx)",
     [](const EvalInput& in, int, FieldValue* out) {
       std::string_view image = in.container_image;
       if (const size_t at = image.find('@'); at != std::string_view::npos) image = image.substr(0, at);
       const size_t slash = image.rfind('/');
       const size_t colon = image.rfind(':');
       if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
         image = image.substr(0, colon);
       }
       SetIf(out, image);
     }},
    {"container.image", FieldType::kString, ArgUse::kNone, "the container image as configured",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.container_image); }},
    {"container.privileged", FieldType::kBool, ArgUse::kNone,
     "true when the container runs privileged",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.container_privileged >= 0) SetBool(out, in.container_privileged == 1);
     }},
    {"k8s.ns.name", FieldType::kString, ArgUse::kNone, "the pod's Kubernetes namespace",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.k8s_namespace); }},
    {"fd.name", FieldType::kString, ArgUse::kNone,
     "the file's path, made absolute (against proc.cwd) and normalised (no ., .., //)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) out->Set(Normalize(Ev(in).path, in.cwd, &out->own));
     }},
    {"fd.nameraw", FieldType::kString, ArgUse::kNone, "the file's path as the call gave it",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) out->Set(Ev(in).path);
     }},
    {"fd.directory", FieldType::kString, ArgUse::kNone, "the directory of fd.name",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) SetIf(out, DirName(Normalize(Ev(in).path, in.cwd, &out->own)));
     }},
    {"fd.filename", FieldType::kString, ArgUse::kNone, "the file's name without its directory",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsFileEvent(Ev(in))) SetIf(out, BaseName(Ev(in).path));
     }},
    {"fd.num", FieldType::kNumber, ArgUse::kNone,
     "open*: the returned descriptor, -1 when the open failed",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (IsOpen(e) && e.has_ret) out->SetNumber(e.ret >= 0 ? static_cast<double>(e.ret) : -1);
     }},
    {"evt.is_open_read", FieldType::kBool, ArgUse::kNone,
     "open*: true when opened for reading (O_RDONLY or O_RDWR)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsOpen(Ev(in))) SetBool(out, (Ev(in).flags & O_ACCMODE) != O_WRONLY);
     }},
    {"evt.is_open_write", FieldType::kBool, ArgUse::kNone,
     "open*: true when opened for writing (O_WRONLY or O_RDWR)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsOpen(Ev(in))) SetBool(out, (Ev(in).flags & O_ACCMODE) != O_RDONLY);
     }},
    {"evt.arg.flags", FieldType::kString, ArgUse::kNone,
     "open*: the flags as names (O_WRONLY|O_CREAT|O_TRUNC)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (!IsOpen(Ev(in))) return;
       OpenFlags(Ev(in).flags, &out->Own());
       out->SetOwn();
     }},
    {"evt.arg.request", FieldType::kString, ArgUse::kNone, "ptrace: the request (PTRACE_ATTACH)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (TypedNr(Ev(in)) != kNrPtrace) return;
       out->Own() = PtraceRequest(Ev(in).args[0]);
       out->SetOwn();
     }},
    {"evt.arg.domain", FieldType::kString, ArgUse::kNone, "socket: the domain (AF_PACKET)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (TypedNr(Ev(in)) != kNrSocket) return;
       out->Own() = SocketDomain(Ev(in).args[0]);
       out->SetOwn();
     }},
    {"evt.arg.target", FieldType::kString, ArgUse::kNone, "symlink*: the link's target",
     [](const EvalInput& in, int, FieldValue* out) {
       const int32_t nr = TypedNr(Ev(in));
       if (nr == kNrSymlink || nr == kNrSymlinkat) out->Set(Ev(in).path);
     }},
    {"evt.arg.linkpath", FieldType::kString, ArgUse::kNone, "symlink*: the link created",
     [](const EvalInput& in, int, FieldValue* out) {
       const int32_t nr = TypedNr(Ev(in));
       if (nr == kNrSymlink || nr == kNrSymlinkat) out->Set(Ev(in).path2);
     }},
    {"evt.arg.oldpath", FieldType::kString, ArgUse::kNone, "link*, rename*: the existing path",
     [](const EvalInput& in, int, FieldValue* out) {
       const int32_t nr = TypedNr(Ev(in));
       if (nr == kNrLink || nr == kNrLinkat || nr == kNrRename || nr == kNrRenameat ||
           nr == kNrRenameat2) {
         out->Set(Ev(in).path);
       }
     }},
    {"evt.arg.newpath", FieldType::kString, ArgUse::kNone, "link*, rename*: the new path",
     [](const EvalInput& in, int, FieldValue* out) {
       const int32_t nr = TypedNr(Ev(in));
       if (nr == kNrLink || nr == kNrLinkat || nr == kNrRename || nr == kNrRenameat ||
           nr == kNrRenameat2) {
         out->Set(Ev(in).path2);
       }
     }},
    {"fd.typechar", FieldType::kString, ArgUse::kNone,
     "f (file), 4 (IPv4), 6 (IPv6) or u (a Unix socket's connect)",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (IsNetEvent(e)) {
         out->Set(e.net.daddr.find(':') != std::string::npos ? "6" : "4");
       } else if (IsUnixConnect(e)) {
         out->Set("u");
       } else if (IsFileEvent(e)) {
         out->Set("f");
       }
     }},
    {"fd.type", FieldType::kString, ArgUse::kNone, "file, ipv4, ipv6 or unix",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (IsNetEvent(e)) {
         out->Set(e.net.daddr.find(':') != std::string::npos ? "ipv6" : "ipv4");
       } else if (IsUnixConnect(e)) {
         out->Set("unix");
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
    {"fd.ip", FieldType::kIpNet, ArgUse::kNone, "an address of the connection (server)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->Set(Ev(in).net.daddr);
     }},
    {"fd.net", FieldType::kIpNet, ArgUse::kNone,
     "the connection's address, compared with CIDR blocks (fd.net in (\"10.0.0.0/8\"))",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->Set(Ev(in).net.daddr);
     }},
    {"fd.snet", FieldType::kIpNet, ArgUse::kNone, "the server's address, compared with CIDR blocks",
     [](const EvalInput& in, int, FieldValue* out) {
       if (IsNetEvent(Ev(in))) out->Set(Ev(in).net.daddr);
     }},
    {"fd.connected", FieldType::kBool, ArgUse::kNone,
     "connect: true when the socket is connected (or connecting: EINPROGRESS)",
     [](const EvalInput& in, int, FieldValue* out) {
       const core::Event& e = Ev(in);
       if (e.kind == EventKind::kNetConnect && e.has_ret) {
         SetBool(out, e.ret == 0 || e.ret == -EINPROGRESS);
       }
     }},
    {"fd.name_changed", FieldType::kBool, ArgUse::kNone,
     "sendto/sendmsg to a new address; Vigil records neither call, so never present",
     [](const EvalInput&, int, FieldValue*) {}},
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
       if (in.verdict != nullptr) SetBool(out, in.verdict->anomalous);
     }},
    {"ml.model", FieldType::kString, ArgUse::kNone, "the scoring model's name",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict != nullptr) SetIf(out, in.verdict->model_name);
     }},
    {"ml.explain", FieldType::kString, ArgUse::kNone, "the explanation, evidence joined by \"; \"",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.verdict == nullptr) return;
       std::string& s = out->Own();
       for (const core::Evidence& ev : in.verdict->explanation) {
         if (!s.empty()) s += "; ";
         s += ev.what;
       }
       out->SetOwn();
     }},
    {"asset.class", FieldType::kString, ArgUse::kNone, "the asset class from the inventory",
     [](const EvalInput& in, int, FieldValue* out) { SetIf(out, in.asset_class); }},
    // The gateway's Modbus requests (ModbusInput); absent on host events.
    {"modbus.function", FieldType::kNumber, ArgUse::kNone, "the Modbus function code",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr) out->SetNumber(in.modbus->function);
     }},
    {"modbus.unit", FieldType::kNumber, ArgUse::kNone, "the Modbus unit identifier, 0..255",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr) out->SetNumber(in.modbus->unit);
     }},
    {"modbus.write", FieldType::kBool, ArgUse::kNone,
     "true for a checked write (5, 6, 15, 16, 23), false for another function code",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr) SetBool(out, in.modbus->write);
     }},
    {"modbus.register", FieldType::kString, ArgUse::kNone,
     "the written register kind, coil or holding (writes only)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && in.modbus->write) out->Set(in.modbus->coil ? "coil" : "holding");
     }},
    {"modbus.address", FieldType::kNumber, ArgUse::kNone, "the register written (writes only)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && in.modbus->write) out->SetNumber(in.modbus->address);
     }},
    {"modbus.value", FieldType::kNumber, ArgUse::kNone, "the value written (writes only)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && in.modbus->write) out->SetNumber(in.modbus->value);
     }},
    {"modbus.mapped", FieldType::kBool, ArgUse::kNone,
     "true when an asset names the written register (writes only)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && in.modbus->write) SetBool(out, !in.modbus->asset.empty());
     }},
    {"modbus.asset", FieldType::kString, ArgUse::kNone,
     "the name of the asset written to (absent when unmapped)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr) SetIf(out, in.modbus->asset);
     }},
    {"modbus.signal", FieldType::kString, ArgUse::kNone,
     "the asset's actuator in the actuator-state model (absent when none)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && !in.modbus->asset.empty()) SetIf(out, in.modbus->signal);
     }},
    {"modbus.critical", FieldType::kBool, ArgUse::kNone,
     "the asset's critical flag (mapped writes)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && !in.modbus->asset.empty()) SetBool(out, in.modbus->critical);
     }},
    {"modbus.min", FieldType::kNumber, ArgUse::kNone, "the asset's lowest allowed value",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && !in.modbus->asset.empty()) out->SetNumber(in.modbus->min);
     }},
    {"modbus.max", FieldType::kNumber, ArgUse::kNone, "the asset's highest allowed value",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && !in.modbus->asset.empty()) out->SetNumber(in.modbus->max);
     }},
    {"modbus.in_range", FieldType::kBool, ArgUse::kNone,
     "true when the value lies in the asset's [min, max] (mapped writes)",
     [](const EvalInput& in, int, FieldValue* out) {
       const ModbusInput* m = in.modbus;
       if (m == nullptr || m->asset.empty()) return;
       SetBool(out, m->value >= m->min && m->value <= m->max);
     }},
    {"modbus.max_rate", FieldType::kNumber, ArgUse::kNone,
     "the asset's largest allowed change per second (absent when none)",
     [](const EvalInput& in, int, FieldValue* out) {
       const ModbusInput* m = in.modbus;
       if (m != nullptr && !m->asset.empty() && m->max_rate > 0) out->SetNumber(m->max_rate);
     }},
    {"modbus.rate", FieldType::kNumber, ArgUse::kNone,
     "change per second against the last committed value (absent without max_rate or one)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && in.modbus->has_rate) out->SetNumber(in.modbus->rate);
     }},
    {"modbus.rate_exceeded", FieldType::kBool, ArgUse::kNone,
     "true when the change since the last committed value exceeds max_rate (mapped writes)",
     [](const EvalInput& in, int, FieldValue* out) {
       if (in.modbus != nullptr && !in.modbus->asset.empty()) {
         SetBool(out, in.modbus->rate_exceeded);
       }
     }},
};

}  // namespace

const std::vector<FieldDef>& Fields() { return kFields; }

const FieldDef* FindField(std::string_view name) {
  for (const FieldDef& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string EventTypeName(const core::Event& e) { return std::string(EventTypeView(e)); }

std::string_view EventTypeView(const core::Event& e) {
  switch (e.kind) {
    case EventKind::kSyscall:
    case EventKind::kTypedCall:
      return core::SyscallName(e.syscall.arch, e.syscall.nr);
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
  return {};
}

}  // namespace vigil::policy
