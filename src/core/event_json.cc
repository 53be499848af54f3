#include "core/event_json.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/syscall_table.h"

namespace vigil::core {
namespace {

using nlohmann::json;

Status FieldError(std::string_view field, std::string_view why) {
  return InvalidArgument("field \"" + std::string(field) + "\": " + std::string(why));
}

// Typed getters: absent optional fields keep the default; present ones must have the type.
Status GetString(const json& obj, const char* key, std::string_view path, std::string* out,
                 bool required, size_t max_len = 4096) {
  auto it = obj.find(key);
  if (it == obj.end()) return required ? FieldError(path, "missing") : Status::Ok();
  if (!it->is_string()) return FieldError(path, "expected a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_len) return FieldError(path, "longer than " + std::to_string(max_len));
  *out = s;
  return Status::Ok();
}

template <typename T>
Status GetInt(const json& obj, const char* key, std::string_view path, T* out, bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) return required ? FieldError(path, "missing") : Status::Ok();
  if (it->is_number_unsigned()) {
    const auto v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return FieldError(path, "out of range");
    }
    *out = static_cast<T>(v);
    return Status::Ok();
  }
  if (it->is_number_integer()) {
    const auto v = it->get<int64_t>();
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
      return FieldError(path, "out of range");
    }
    *out = static_cast<T>(v);
    return Status::Ok();
  }
  return FieldError(path, "expected an integer");
}

Status ParseObject(const json& j, Event* e) {
  std::string schema;
  VIGIL_RETURN_IF_ERROR(GetString(j, "schema", "schema", &schema, false));
  if (!schema.empty() && schema != kEventSchemaVersion) {
    return FieldError("schema", "unsupported schema \"" + schema + "\" (this build reads " +
                                    std::string(kEventSchemaVersion) + ")");
  }
  std::string kind, source;
  VIGIL_RETURN_IF_ERROR(GetString(j, "kind", "kind", &kind, true));
  if (!ParseEventKind(kind, &e->kind)) return FieldError("kind", "unknown kind \"" + kind + "\"");
  VIGIL_RETURN_IF_ERROR(GetString(j, "source", "source", &source, false));
  if (!source.empty() && !ParseEventSource(source, &e->source)) {
    return FieldError("source", "unknown source \"" + source + "\"");
  }
  VIGIL_RETURN_IF_ERROR(GetInt(j, "seq", "seq", &e->seq, false));
  VIGIL_RETURN_IF_ERROR(GetInt(j, "time_ns", "time_ns", &e->time_ns, false));
  VIGIL_RETURN_IF_ERROR(GetString(j, "host", "host", &e->host, false, 255));
  VIGIL_RETURN_IF_ERROR(GetString(j, "stream", "stream", &e->stream, false, 1024));
  if (auto it = j.find("proc"); it != j.end()) {
    if (!it->is_object()) return FieldError("proc", "expected an object");
    const json& p = *it;
    VIGIL_RETURN_IF_ERROR(GetInt(p, "pid", "proc.pid", &e->proc.pid, false));
    VIGIL_RETURN_IF_ERROR(GetInt(p, "tid", "proc.tid", &e->proc.tid, false));
    VIGIL_RETURN_IF_ERROR(GetInt(p, "ppid", "proc.ppid", &e->proc.ppid, false));
    VIGIL_RETURN_IF_ERROR(GetInt(p, "uid", "proc.uid", &e->proc.uid, false));
    VIGIL_RETURN_IF_ERROR(GetString(p, "comm", "proc.comm", &e->proc.comm, false, 255));
    VIGIL_RETURN_IF_ERROR(GetString(p, "exe", "proc.exe", &e->proc.exe, false));
    VIGIL_RETURN_IF_ERROR(GetInt(p, "loginuid", "proc.loginuid", &e->proc.loginuid, false));
    VIGIL_RETURN_IF_ERROR(GetInt(p, "tty", "proc.tty", &e->proc.tty, false));
    if (p.contains("cap_effective") || p.contains("cap_permitted")) e->proc.has_caps = true;
    VIGIL_RETURN_IF_ERROR(
        GetInt(p, "cap_effective", "proc.cap_effective", &e->proc.cap_effective, false));
    VIGIL_RETURN_IF_ERROR(
        GetInt(p, "cap_permitted", "proc.cap_permitted", &e->proc.cap_permitted, false));
  }
  VIGIL_RETURN_IF_ERROR(GetInt(j, "cgroup_id", "cgroup_id", &e->cgroup_id, false));
  VIGIL_RETURN_IF_ERROR(GetInt(j, "flags", "flags", &e->flags, false));
  VIGIL_RETURN_IF_ERROR(GetInt(j, "mode", "mode", &e->mode, false));
  VIGIL_RETURN_IF_ERROR(GetString(j, "path2", "path2", &e->path2, false));
  if (auto it = j.find("args"); it != j.end()) {
    if (!it->is_array() || it->size() > e->args.size()) {
      return FieldError("args", "expected a list of at most 4 integers");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      if (!a.is_number_integer() && !a.is_number_unsigned()) {
        return FieldError("args", "expected integers");
      }
      e->args[i] = a.is_number_unsigned() ? a.get<uint64_t>()
                                          : static_cast<uint64_t>(a.get<int64_t>());
    }
  }
  if (auto it = j.find("ret"); it != j.end()) {
    VIGIL_RETURN_IF_ERROR(GetInt(j, "ret", "ret", &e->ret, false));
    e->has_ret = true;
  }
  switch (e->kind) {
    case EventKind::kSyscall:
    case EventKind::kTypedCall: {
      auto it = j.find("syscall");
      if (it == j.end() || !it->is_object()) return FieldError("syscall", "missing or not an object");
      std::string arch, name;
      VIGIL_RETURN_IF_ERROR(GetString(*it, "arch", "syscall.arch", &arch, true));
      if (!ParseArch(arch, &e->syscall.arch) || e->syscall.arch == Arch::kUnknown) {
        return FieldError("syscall.arch", "unknown architecture \"" + arch + "\"");
      }
      VIGIL_RETURN_IF_ERROR(GetInt(*it, "nr", "syscall.nr", &e->syscall.nr, true));
      if (e->kind == EventKind::kTypedCall) {
        VIGIL_RETURN_IF_ERROR(GetString(j, "path", "path", &e->path, false));
        if (auto n = j.find("net"); n != j.end()) {
          if (!n->is_object()) return FieldError("net", "expected an object");
          VIGIL_RETURN_IF_ERROR(GetString(*n, "daddr", "net.daddr", &e->net.daddr, true, 64));
          VIGIL_RETURN_IF_ERROR(GetInt(*n, "dport", "net.dport", &e->net.dport, false));
          VIGIL_RETURN_IF_ERROR(GetInt(*n, "protocol", "net.protocol", &e->net.protocol, false));
        }
      }
      break;
    }
    case EventKind::kFileOpen:
    case EventKind::kProcessExec:
      VIGIL_RETURN_IF_ERROR(GetString(j, "path", "path", &e->path, e->kind == EventKind::kFileOpen));
      break;
    case EventKind::kNetConnect: {
      auto it = j.find("net");
      if (it == j.end() || !it->is_object()) return FieldError("net", "missing or not an object");
      VIGIL_RETURN_IF_ERROR(GetString(*it, "daddr", "net.daddr", &e->net.daddr, true, 64));
      VIGIL_RETURN_IF_ERROR(GetInt(*it, "dport", "net.dport", &e->net.dport, false));
      VIGIL_RETURN_IF_ERROR(GetInt(*it, "protocol", "net.protocol", &e->net.protocol, false));
      break;
    }
    case EventKind::kProcessFork:
      VIGIL_RETURN_IF_ERROR(GetInt(j, "child_pid", "child_pid", &e->child_pid, true));
      break;
    case EventKind::kProcessExit:
    case EventKind::kStreamEnd:
      break;
  }
  return Status::Ok();
}

}  // namespace

Result<Event> ParseEventJson(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("not valid JSON");
  if (!j.is_object()) return InvalidArgument("expected a JSON object");
  Event e;
  e.source = EventSource::kReplay;
  VIGIL_RETURN_IF_ERROR(ParseObject(j, &e));
  return e;
}

std::string EventToJson(const Event& e) {
  json j;
  j["schema"] = kEventSchemaVersion;
  j["source"] = EventSourceName(e.source);
  j["kind"] = EventKindName(e.kind);
  j["seq"] = e.seq;
  j["time_ns"] = e.time_ns;
  if (!e.host.empty()) j["host"] = e.host;
  if (!e.stream.empty()) j["stream"] = e.stream;
  j["proc"] = {{"pid", e.proc.pid}, {"tid", e.proc.tid}, {"ppid", e.proc.ppid},
               {"uid", e.proc.uid}, {"comm", e.proc.comm}};
  if (!e.proc.exe.empty()) j["proc"]["exe"] = e.proc.exe;
  if (e.proc.loginuid != kNoLoginUid) j["proc"]["loginuid"] = e.proc.loginuid;
  if (e.proc.tty != 0) j["proc"]["tty"] = e.proc.tty;
  if (e.proc.has_caps) {
    j["proc"]["cap_effective"] = e.proc.cap_effective;
    j["proc"]["cap_permitted"] = e.proc.cap_permitted;
  }
  if (e.cgroup_id != 0) j["cgroup_id"] = e.cgroup_id;
  if (e.flags != 0) j["flags"] = e.flags;
  if (e.mode != 0) j["mode"] = e.mode;
  if (!e.path2.empty()) j["path2"] = e.path2;
  if (e.args != std::array<uint64_t, 4>{}) j["args"] = e.args;
  if (e.has_ret) j["ret"] = e.ret;
  switch (e.kind) {
    case EventKind::kSyscall:
      j["syscall"] = {{"arch", ArchName(e.syscall.arch)}, {"nr", e.syscall.nr}};
      break;
    case EventKind::kTypedCall:
      j["syscall"] = {{"arch", ArchName(e.syscall.arch)}, {"nr", e.syscall.nr}};
      if (!e.path.empty()) j["path"] = e.path;
      if (!e.net.daddr.empty()) {
        j["net"] = {{"daddr", e.net.daddr}, {"dport", e.net.dport}, {"protocol", e.net.protocol}};
      }
      break;
    case EventKind::kProcessFork:
      j["child_pid"] = e.child_pid;
      break;
    case EventKind::kFileOpen:
    case EventKind::kProcessExec:
      j["path"] = e.path;
      break;
    case EventKind::kNetConnect:
      j["net"] = {{"daddr", e.net.daddr}, {"dport", e.net.dport}, {"protocol", e.net.protocol}};
      break;
    default:
      break;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json OcsfFindingBase(int64_t time_ns, int severity_id) {
  json j;
  j["class_uid"] = 2004;
  j["class_name"] = "Detection Finding";
  j["category_uid"] = 2;
  j["category_name"] = "Findings";
  j["activity_id"] = 1;
  j["type_uid"] = 200401;
  j["time"] = time_ns / 1'000'000;
  j["severity_id"] = severity_id;
  j["status_id"] = 1;
  j["metadata"] = {{"version", "1.1.0"},
                   {"product", {{"name", "Vigil"}, {"vendor_name", "Vigil"}}}};
  return j;
}

std::string VerdictToOcsfJson(const Verdict& v) {
  const int severity = v.anomalous ? (v.score >= 0.9 ? 4 : 3) : 1;  // High/Medium/Informational
  json j = OcsfFindingBase(v.time_ns, severity);
  if (!v.host.empty()) j["device"] = {{"hostname", v.host}};
  j["process"] = {{"pid", v.pid}};
  if (!v.subject.empty() && v.subject != "*") j["process"]["name"] = v.subject;
  j["finding_info"] = {
      {"title", v.anomalous ? "Anomalous system-call sequence" : "System-call sequence scored"},
      {"uid", v.stream},
      {"analytic", {{"name", v.model_name}, {"version", v.model_version},
                    {"type_id", 4}, {"type", "Learning (ML/DL)"}}}};
  j["risk_score"] = static_cast<int>(std::lround(std::clamp(v.score, 0.0, 1.0) * 100));
  json expl = json::array();
  for (const Evidence& ev : v.explanation) {
    expl.push_back({{"what", ev.what}, {"weight", std::round(ev.weight * 1000) / 1000}});
  }
  j["vigil"] = {{"score", std::round(v.score * 1e6) / 1e6}, {"anomalous", v.anomalous}, {"stream", v.stream},
                {"events", v.events}, {"explanation", expl}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// OCSF classes and activities used for events (OCSF 1.1).
struct OcsfActivity {
  int class_uid = 0;    // 0: no class describes the event
  int activity_id = 0;
  const char* class_name = "";
  const char* activity_name = "";
};

constexpr OcsfActivity kProcessLaunch{1007, 1, "Process Activity", "Launch"};
constexpr OcsfActivity kProcessTerminate{1007, 2, "Process Activity", "Terminate"};
constexpr OcsfActivity kProcessOpen{1007, 3, "Process Activity", "Open"};
constexpr OcsfActivity kProcessSetUserId{1007, 5, "Process Activity", "Set User ID"};
constexpr OcsfActivity kFileOpen{1001, 14, "File System Activity", "Open"};
constexpr OcsfActivity kFileDelete{1001, 4, "File System Activity", "Delete"};
constexpr OcsfActivity kFileRename{1001, 5, "File System Activity", "Rename"};
constexpr OcsfActivity kFileMount{1001, 12, "File System Activity", "Mount"};
constexpr OcsfActivity kNetOpen{4001, 1, "Network Activity", "Open"};
constexpr OcsfActivity kNetListen{4001, 7, "Network Activity", "Listen"};
constexpr OcsfActivity kNetOther{4001, 99, "Network Activity", "Other"};

// The activity a typed system call reports, by its name.
OcsfActivity TypedCallActivity(std::string_view name) {
  if (name == "execve" || name == "execveat") return kProcessLaunch;
  if (name == "open" || name == "openat" || name == "openat2") return kFileOpen;
  if (name == "unlink" || name == "unlinkat" || name == "rmdir") return kFileDelete;
  if (name == "rename" || name == "renameat" || name == "renameat2") return kFileRename;
  if (name == "mount") return kFileMount;
  if (name == "connect" || name == "accept" || name == "accept4") return kNetOpen;
  if (name == "listen") return kNetListen;
  if (name == "bind") return kNetOther;
  if (name == "ptrace") return kProcessOpen;
  if (name.starts_with("set") && name.find("uid") != std::string_view::npos) {
    return kProcessSetUserId;
  }
  return {};
}

OcsfActivity ActivityOf(const Event& e) {
  switch (e.kind) {
    case EventKind::kProcessExec:
    case EventKind::kProcessFork:
      return kProcessLaunch;
    case EventKind::kProcessExit:
      return kProcessTerminate;
    case EventKind::kFileOpen:
      return kFileOpen;
    case EventKind::kNetConnect:
      return kNetOpen;
    case EventKind::kTypedCall:
      return TypedCallActivity(SyscallName(e.syscall.arch, e.syscall.nr));
    case EventKind::kSyscall:
    case EventKind::kStreamEnd:
      break;
  }
  return {};
}

json OcsfProcess(const ProcessIdentity& p) {
  json j = {{"pid", p.pid}, {"user", {{"uid", std::to_string(p.uid)}}}};
  if (p.tid != 0) j["tid"] = p.tid;
  if (!p.comm.empty()) j["name"] = p.comm;
  if (!p.exe.empty()) j["file"] = {{"path", p.exe}, {"type_id", 1}};
  if (p.ppid != 0) j["parent_process"] = {{"pid", p.ppid}};
  return j;
}

json OcsfFile(const std::string& path) {
  json j = {{"path", path}, {"type_id", 1}};
  const size_t slash = path.find_last_of('/');
  j["name"] = slash == std::string::npos ? path : path.substr(slash + 1);
  return j;
}

}  // namespace

std::optional<std::string> EventToOcsfJson(const Event& e) {
  const OcsfActivity a = ActivityOf(e);
  if (a.class_uid == 0) return std::nullopt;
  json j;
  j["class_uid"] = a.class_uid;
  j["class_name"] = a.class_name;
  j["category_uid"] = a.class_uid / 1000;
  j["category_name"] = a.class_uid / 1000 == 4 ? "Network Activity" : "System Activity";
  j["activity_id"] = a.activity_id;
  j["activity_name"] = a.activity_id == 99 ? std::string(SyscallName(e.syscall.arch, e.syscall.nr))
                                           : std::string(a.activity_name);
  j["type_uid"] = a.class_uid * 100 + a.activity_id;
  j["time"] = e.time_ns / 1'000'000;
  j["severity_id"] = 1;  // Informational: an activity, not a finding
  j["metadata"] = {{"version", "1.1.0"},
                   {"product", {{"name", "Vigil"}, {"vendor_name", "Vigil"}}},
                   {"log_name", std::string(EventSourceName(e.source))}};
  if (!e.host.empty()) j["device"] = {{"hostname", e.host}};
  if (e.has_ret) {
    j["status_id"] = e.ret >= 0 ? 1 : 2;  // Success / Failure
    j["status"] = e.ret >= 0 ? "Success" : "Failure";
    if (e.ret < 0) j["status_code"] = std::to_string(-e.ret);  // errno
  }
  const json actor_process = OcsfProcess(e.proc);
  if (a.class_uid == 1007) {
    j["actor"] = {{"process", actor_process}};
    json target = actor_process;
    if (e.kind == EventKind::kProcessFork) {
      target = {{"pid", e.child_pid}, {"parent_process", {{"pid", e.proc.pid}}}};
    } else if (!e.path.empty() && a.activity_id == 1) {
      target["file"] = {{"path", e.path}, {"type_id", 1}};
    }
    j["process"] = target;
  } else {
    j["actor"] = {{"process", actor_process}};
  }
  if (a.class_uid == 1001 && !e.path.empty()) j["file"] = OcsfFile(e.path);
  if (a.class_uid == 4001) {
    if (!e.net.daddr.empty()) j["dst_endpoint"] = {{"ip", e.net.daddr}, {"port", e.net.dport}};
    if (e.net.protocol != 0) j["connection_info"] = {{"protocol_num", e.net.protocol}};
  }
  j["vigil"] = {{"kind", std::string(EventKindName(e.kind))}, {"seq", e.seq}};
  if (!e.stream.empty()) j["vigil"]["stream"] = e.stream;
  if (e.kind == EventKind::kTypedCall) {
    j["vigil"]["syscall"] = std::string(SyscallName(e.syscall.arch, e.syscall.nr));
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace vigil::core
