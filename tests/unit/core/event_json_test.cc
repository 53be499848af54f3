#include "core/event_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/syscall_table.h"

namespace vigil::core {
namespace {

Event FullEvent(EventKind kind) {
  Event e;
  e.source = EventSource::kEbpf;
  e.kind = kind;
  e.seq = 18446744073709551615ull;  // the largest seq survives
  e.time_ns = 1'700'000'000'123'456'789;
  e.host = "web-1";
  e.stream = "pid-4242@1700000000";
  e.proc = {4242, 4243, 1, 1000, "nginx", "/usr/sbin/nginx"};
  switch (kind) {
    case EventKind::kSyscall:
      e.syscall = {Arch::kX86_64, 257};
      break;
    case EventKind::kFileOpen:
      e.path = "/etc/shadow";
      break;
    case EventKind::kProcessExec:
      e.path = "/bin/sh";
      break;
    case EventKind::kNetConnect:
      e.net = {"2001:db8::1", 443, 6};
      break;
    case EventKind::kProcessFork:
      e.child_pid = 4242;
      break;
    case EventKind::kTypedCall:
      e.syscall = {Arch::kX86_64, 87};
      e.path = "/tmp/gone";
      e.has_ret = true;
      e.ret = -2;
      break;
    case EventKind::kProcessExit:
    case EventKind::kStreamEnd:
      break;
  }
  return e;
}

void ExpectSame(const Event& a, const Event& b) {
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.time_ns, b.time_ns);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.stream, b.stream);
  EXPECT_EQ(a.proc.pid, b.proc.pid);
  EXPECT_EQ(a.proc.tid, b.proc.tid);
  EXPECT_EQ(a.proc.ppid, b.proc.ppid);
  EXPECT_EQ(a.proc.uid, b.proc.uid);
  EXPECT_EQ(a.proc.comm, b.proc.comm);
  EXPECT_EQ(a.proc.exe, b.proc.exe);
  EXPECT_EQ(a.syscall.arch, b.syscall.arch);
  EXPECT_EQ(a.syscall.nr, b.syscall.nr);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.net.daddr, b.net.daddr);
  EXPECT_EQ(a.net.dport, b.net.dport);
  EXPECT_EQ(a.net.protocol, b.net.protocol);
}

TEST(EventJsonTest, EveryKindRoundTrips) {
  for (EventKind kind : {EventKind::kSyscall, EventKind::kProcessExec, EventKind::kProcessExit,
                         EventKind::kFileOpen, EventKind::kNetConnect, EventKind::kStreamEnd,
                         EventKind::kProcessFork, EventKind::kTypedCall}) {
    const Event e = FullEvent(kind);
    const std::string line = EventToJson(e);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto back = ParseEventJson(line);
    ASSERT_TRUE(back.has_value()) << EventKindName(kind) << ": " << back.error().ToString();
    SCOPED_TRACE(line);
    ExpectSame(e, *back);
    EXPECT_EQ(EventToJson(*back), line);
  }
}

TEST(EventJsonTest, ExtremeIntegersRoundTrip) {
  Event e = FullEvent(EventKind::kSyscall);
  e.time_ns = INT64_MIN;
  e.proc.pid = UINT32_MAX;
  e.syscall.nr = INT32_MIN;
  auto back = ParseEventJson(EventToJson(e));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  ExpectSame(e, *back);
}

TEST(EventJsonTest, WritesTheSchemaAndNames) {
  const nlohmann::json j = nlohmann::json::parse(EventToJson(FullEvent(EventKind::kSyscall)));
  EXPECT_EQ(j["schema"], "vigil.event/v1");
  EXPECT_EQ(j["kind"], "syscall");
  EXPECT_EQ(j["source"], "ebpf");
  EXPECT_EQ(j["syscall"]["arch"], "x86_64");
  EXPECT_EQ(j["proc"]["comm"], "nginx");
}

TEST(EventJsonTest, MinimalLinesTakeDefaults) {
  auto e = ParseEventJson(R"({"kind":"syscall","syscall":{"arch":"i386","nr":3}})");
  ASSERT_TRUE(e.has_value()) << e.error().ToString();
  EXPECT_EQ(e->source, EventSource::kReplay);  // a replayed file unless it says otherwise
  EXPECT_EQ(e->seq, 0u);
  EXPECT_EQ(e->proc.pid, 0u);
  EXPECT_EQ(e->syscall.arch, Arch::kI386);
  EXPECT_EQ(e->syscall.nr, 3);
  // process_exec's path is optional; unknown keys are ignored.
  auto exec = ParseEventJson(R"({"kind":"process_exec","future_field":{"x":[1]}})");
  ASSERT_TRUE(exec.has_value()) << exec.error().ToString();
  EXPECT_EQ(exec->path, "");
  EXPECT_TRUE(ParseEventJson(R"( {"schema":"vigil.event/v1","kind":"stream_end"} )").has_value());
}

TEST(EventJsonTest, BadInputNamesTheField) {
  struct Case {
    const char* line;
    const char* want;  // the whole message
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"{\"kind\":", "not valid JSON"},
      {"[1,2]", "expected a JSON object"},
      {"\"syscall\"", "expected a JSON object"},
      {"{}", "field \"kind\": missing"},
      {R"({"kind":3})", "field \"kind\": expected a string"},
      {R"({"kind":"syscal"})", "field \"kind\": unknown kind \"syscal\""},
      {R"({"schema":"vigil.event/v2","kind":"stream_end"})",
       "field \"schema\": unsupported schema \"vigil.event/v2\" (this build reads vigil.event/v1)"},
      {R"({"schema":1,"kind":"stream_end"})", "field \"schema\": expected a string"},
      {R"({"kind":"stream_end","source":"radio"})", "field \"source\": unknown source \"radio\""},
      {R"({"kind":"stream_end","seq":-1})", "field \"seq\": out of range"},
      {R"({"kind":"stream_end","seq":"1"})", "field \"seq\": expected an integer"},
      {R"({"kind":"stream_end","seq":1.5})", "field \"seq\": expected an integer"},
      {R"({"kind":"stream_end","time_ns":9223372036854775808})", "field \"time_ns\": out of range"},
      {R"({"kind":"stream_end","host":7})", "field \"host\": expected a string"},
      {R"({"kind":"stream_end","stream":null})", "field \"stream\": expected a string"},
      {R"({"kind":"stream_end","proc":[]})", "field \"proc\": expected an object"},
      {R"({"kind":"stream_end","proc":{"pid":-1}})", "field \"proc.pid\": out of range"},
      {R"({"kind":"stream_end","proc":{"pid":4294967296}})", "field \"proc.pid\": out of range"},
      {R"({"kind":"stream_end","proc":{"tid":true}})", "field \"proc.tid\": expected an integer"},
      {R"({"kind":"stream_end","proc":{"ppid":1e3}})", "field \"proc.ppid\": expected an integer"},
      {R"({"kind":"stream_end","proc":{"uid":-5}})", "field \"proc.uid\": out of range"},
      {R"({"kind":"stream_end","proc":{"comm":1}})", "field \"proc.comm\": expected a string"},
      {R"({"kind":"stream_end","proc":{"exe":{}}})", "field \"proc.exe\": expected a string"},
      {R"({"kind":"syscall"})", "field \"syscall\": missing or not an object"},
      {R"({"kind":"syscall","syscall":5})", "field \"syscall\": missing or not an object"},
      {R"({"kind":"syscall","syscall":{"nr":3}})", "field \"syscall.arch\": missing"},
      {R"({"kind":"syscall","syscall":{"arch":"arm64","nr":3}})",
       "field \"syscall.arch\": unknown architecture \"arm64\""},
      {R"({"kind":"syscall","syscall":{"arch":"unknown","nr":3}})",
       "field \"syscall.arch\": unknown architecture \"unknown\""},
      {R"({"kind":"syscall","syscall":{"arch":"i386"}})", "field \"syscall.nr\": missing"},
      {R"({"kind":"syscall","syscall":{"arch":"i386","nr":"3"}})",
       "field \"syscall.nr\": expected an integer"},
      {R"({"kind":"syscall","syscall":{"arch":"i386","nr":2147483648}})",
       "field \"syscall.nr\": out of range"},
      {R"({"kind":"syscall","syscall":{"arch":"i386","nr":-2147483649}})",
       "field \"syscall.nr\": out of range"},
      {R"({"kind":"file_open"})", "field \"path\": missing"},
      {R"({"kind":"file_open","path":["/etc"]})", "field \"path\": expected a string"},
      {R"({"kind":"net_connect"})", "field \"net\": missing or not an object"},
      {R"({"kind":"net_connect","net":{}})", "field \"net.daddr\": missing"},
      {R"({"kind":"net_connect","net":{"daddr":"10.0.0.1","dport":65536}})",
       "field \"net.dport\": out of range"},
      {R"({"kind":"net_connect","net":{"daddr":"10.0.0.1","protocol":256}})",
       "field \"net.protocol\": out of range"},
  };
  for (const Case& c : cases) {
    auto r = ParseEventJson(c.line);
    ASSERT_FALSE(r.has_value()) << c.line;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument) << c.line;
    EXPECT_EQ(r.error().message(), c.want) << c.line;
  }
}

TEST(EventJsonTest, OverlongStringsAreRefused) {
  const std::string host(256, 'h');
  auto r = ParseEventJson(R"({"kind":"stream_end","host":")" + host + "\"}");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "field \"host\": longer than 255");
  const std::string comm(256, 'c');
  r = ParseEventJson(R"({"kind":"stream_end","proc":{"comm":")" + comm + "\"}}");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "field \"proc.comm\": longer than 255");
  EXPECT_TRUE(ParseEventJson(R"({"kind":"stream_end","host":")" + std::string(255, 'h') + "\"}")
                  .has_value());
}

TEST(EventJsonTest, InvalidUtf8IsRefusedOnInputAndReplacedOnOutput) {
  EXPECT_FALSE(ParseEventJson("{\"kind\":\"file_open\",\"path\":\"\xff\xfe\"}").has_value());
  Event e = FullEvent(EventKind::kFileOpen);
  e.path = "/tmp/\xff\xfe";
  const std::string line = EventToJson(e);  // must not throw
  auto back = ParseEventJson(line);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->path, "/tmp/\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFD twice
}

Verdict SampleVerdict(double score, bool anomalous) {
  Verdict v;
  v.score = score;
  v.anomalous = anomalous;
  v.model_name = "syscall-ngram";
  v.model_version = "3";
  v.subject = "sshd";
  v.stream = "Attack_Data_Master/Adduser_1/UAD-Adduser-1-1.txt";
  v.host = "lab";
  v.pid = 1234;
  v.events = 812;
  v.time_ns = 1'700'000'000'987'654'321;
  v.explanation = {{"open read setuid", 14.5}, {"setuid execve", 11.25}};
  return v;
}

TEST(VerdictOcsfTest, IsADetectionFinding) {
  const nlohmann::json j = nlohmann::json::parse(VerdictToOcsfJson(SampleVerdict(0.95, true)));
  EXPECT_EQ(j["class_uid"], 2004);
  EXPECT_EQ(j["class_name"], "Detection Finding");
  EXPECT_EQ(j["category_uid"], 2);
  EXPECT_EQ(j["activity_id"], 1);
  EXPECT_EQ(j["type_uid"], 200401);
  EXPECT_EQ(j["time"], 1'700'000'000'987);  // milliseconds
  EXPECT_EQ(j["severity_id"], 4);
  EXPECT_EQ(j["metadata"]["version"], "1.1.0");
  EXPECT_EQ(j["metadata"]["product"]["name"], "Vigil");
  EXPECT_EQ(j["device"]["hostname"], "lab");
  EXPECT_EQ(j["process"]["pid"], 1234);
  EXPECT_EQ(j["process"]["name"], "sshd");
  EXPECT_EQ(j["finding_info"]["uid"], "Attack_Data_Master/Adduser_1/UAD-Adduser-1-1.txt");
  EXPECT_EQ(j["finding_info"]["title"], "Anomalous system-call sequence");
  EXPECT_EQ(j["finding_info"]["analytic"]["name"], "syscall-ngram");
  EXPECT_EQ(j["finding_info"]["analytic"]["version"], "3");
  EXPECT_EQ(j["finding_info"]["analytic"]["type_id"], 4);
  EXPECT_EQ(j["risk_score"], 95);
  EXPECT_EQ(j["vigil"]["score"], 0.95);
  EXPECT_EQ(j["vigil"]["anomalous"], true);
  EXPECT_EQ(j["vigil"]["events"], 812);
  ASSERT_EQ(j["vigil"]["explanation"].size(), 2u);
  EXPECT_EQ(j["vigil"]["explanation"][0]["what"], "open read setuid");
  EXPECT_EQ(j["vigil"]["explanation"][1]["weight"], 11.25);
}

TEST(VerdictOcsfTest, SeverityFollowsScoreAndVerdict) {
  auto severity = [](double score, bool anomalous) {
    return nlohmann::json::parse(VerdictToOcsfJson(SampleVerdict(score, anomalous)))["severity_id"]
        .get<int>();
  };
  EXPECT_EQ(severity(0.95, true), 4);   // High
  EXPECT_EQ(severity(0.6, true), 3);    // Medium
  EXPECT_EQ(severity(0.95, false), 1);  // Informational
  const auto benign = nlohmann::json::parse(VerdictToOcsfJson(SampleVerdict(0.1, false)));
  EXPECT_EQ(benign["finding_info"]["title"], "System-call sequence scored");
}

TEST(VerdictOcsfTest, RiskScoreIsClampedAndHostIsOptional) {
  Verdict v = SampleVerdict(1.7, true);
  v.host.clear();
  v.subject = "bad\xff";  // invalid UTF-8 must not throw
  const nlohmann::json j = nlohmann::json::parse(VerdictToOcsfJson(v));
  EXPECT_EQ(j["risk_score"], 100);
  EXPECT_FALSE(j.contains("device"));
  EXPECT_EQ(nlohmann::json::parse(VerdictToOcsfJson(SampleVerdict(-3, false)))["risk_score"], 0);
}

Event TypedEvent(EventKind kind) {
  Event e;
  e.source = EventSource::kEbpf;
  e.kind = kind;
  e.seq = 42;
  e.time_ns = 1'700'000'000'123'456'789;
  e.host = "lab";
  e.proc = {.pid = 300, .tid = 301, .ppid = 1, .uid = 1000, .comm = "cat", .exe = "/usr/bin/cat"};
  return e;
}

nlohmann::json Ocsf(const Event& e) {
  auto line = EventToOcsfJson(e);
  EXPECT_TRUE(line.has_value());
  return line ? nlohmann::json::parse(*line) : nlohmann::json();
}

TEST(EventOcsfTest, FileOpenIsFileSystemActivityOpen) {
  Event e = TypedEvent(EventKind::kFileOpen);
  e.path = "/etc/shadow";
  e.has_ret = true;
  e.ret = -13;  // EACCES
  const nlohmann::json j = Ocsf(e);
  EXPECT_EQ(j["class_uid"], 1001);
  EXPECT_EQ(j["category_uid"], 1);
  EXPECT_EQ(j["activity_id"], 14);
  EXPECT_EQ(j["type_uid"], 100114);
  EXPECT_EQ(j["time"], 1'700'000'000'123);
  EXPECT_EQ(j["file"]["path"], "/etc/shadow");
  EXPECT_EQ(j["file"]["name"], "shadow");
  EXPECT_EQ(j["status_id"], 2);
  EXPECT_EQ(j["status_code"], "13");
  EXPECT_EQ(j["actor"]["process"]["pid"], 300);
  EXPECT_EQ(j["actor"]["process"]["name"], "cat");
  EXPECT_EQ(j["actor"]["process"]["file"]["path"], "/usr/bin/cat");
  EXPECT_EQ(j["actor"]["process"]["user"]["uid"], "1000");
  EXPECT_EQ(j["actor"]["process"]["parent_process"]["pid"], 1);
  EXPECT_EQ(j["device"]["hostname"], "lab");
  EXPECT_EQ(j["vigil"]["kind"], "file_open");
  EXPECT_EQ(j["vigil"]["seq"], 42);
}

TEST(EventOcsfTest, ProcessLifecycleIsProcessActivity) {
  Event exec = TypedEvent(EventKind::kProcessExec);
  exec.path = "/usr/bin/cat";
  nlohmann::json j = Ocsf(exec);
  EXPECT_EQ(j["class_uid"], 1007);
  EXPECT_EQ(j["activity_id"], 1);
  EXPECT_EQ(j["type_uid"], 100701);
  EXPECT_EQ(j["process"]["pid"], 300);
  EXPECT_EQ(j["process"]["file"]["path"], "/usr/bin/cat");
  EXPECT_FALSE(j.contains("status_id"));  // no return value known

  Event fork = TypedEvent(EventKind::kProcessFork);
  fork.child_pid = 777;
  j = Ocsf(fork);
  EXPECT_EQ(j["activity_id"], 1);
  EXPECT_EQ(j["process"]["pid"], 777);
  EXPECT_EQ(j["process"]["parent_process"]["pid"], 300);
  EXPECT_EQ(j["actor"]["process"]["pid"], 300);

  j = Ocsf(TypedEvent(EventKind::kProcessExit));
  EXPECT_EQ(j["activity_id"], 2);
  EXPECT_EQ(j["type_uid"], 100702);
}

TEST(EventOcsfTest, ConnectIsNetworkActivityWithTheDestination) {
  Event e = TypedEvent(EventKind::kNetConnect);
  e.net = {.daddr = "127.0.0.1", .dport = 8080, .protocol = 6};
  e.has_ret = true;
  e.ret = 0;
  const nlohmann::json j = Ocsf(e);
  EXPECT_EQ(j["class_uid"], 4001);
  EXPECT_EQ(j["category_uid"], 4);
  EXPECT_EQ(j["category_name"], "Network Activity");
  EXPECT_EQ(j["activity_id"], 1);
  EXPECT_EQ(j["dst_endpoint"]["ip"], "127.0.0.1");
  EXPECT_EQ(j["dst_endpoint"]["port"], 8080);
  EXPECT_EQ(j["connection_info"]["protocol_num"], 6);
  EXPECT_EQ(j["status_id"], 1);
}

TEST(EventOcsfTest, TypedCallsMapByName) {
  auto activity = [](std::string_view name) {
    Event e = TypedEvent(EventKind::kTypedCall);
    e.syscall = {.arch = Arch::kX86_64, .nr = SyscallNumber(Arch::kX86_64, name)};
    EXPECT_GE(e.syscall.nr, 0) << name;
    const nlohmann::json j = Ocsf(e);
    EXPECT_EQ(j["vigil"]["syscall"], name);
    return std::pair(j["class_uid"].get<int>(), j["activity_id"].get<int>());
  };
  EXPECT_EQ(activity("unlinkat"), std::pair(1001, 4));
  EXPECT_EQ(activity("renameat2"), std::pair(1001, 5));
  EXPECT_EQ(activity("mount"), std::pair(1001, 12));
  EXPECT_EQ(activity("openat"), std::pair(1001, 14));
  EXPECT_EQ(activity("setuid"), std::pair(1007, 5));
  EXPECT_EQ(activity("setresuid"), std::pair(1007, 5));
  EXPECT_EQ(activity("ptrace"), std::pair(1007, 3));
  EXPECT_EQ(activity("execveat"), std::pair(1007, 1));
  EXPECT_EQ(activity("accept4"), std::pair(4001, 1));
  EXPECT_EQ(activity("bind"), std::pair(4001, 99));
}

TEST(EventOcsfTest, StreamKindsHaveNoActivityClass) {
  EXPECT_FALSE(EventToOcsfJson(TypedEvent(EventKind::kSyscall)).has_value());
  EXPECT_FALSE(EventToOcsfJson(TypedEvent(EventKind::kStreamEnd)).has_value());
  Event unknown = TypedEvent(EventKind::kTypedCall);
  unknown.syscall = {.arch = Arch::kX86_64, .nr = 0};  // read: not a typed call
  EXPECT_FALSE(EventToOcsfJson(unknown).has_value());
  Event bad = TypedEvent(EventKind::kFileOpen);
  bad.path = "/tmp/\xff";  // invalid UTF-8 must not throw
  EXPECT_TRUE(EventToOcsfJson(bad).has_value());
}

}  // namespace
}  // namespace vigil::core
