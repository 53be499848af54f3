#include "sensor/replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/clock.h"
#include "temp_dir.h"

namespace vigil::sensor {
namespace {

using core::EventKind;
using core::StatusCode;
using testing::TempDir;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// One call of Next(): an event, the end, or an error message.
struct Step {
  std::string error;  // non-empty for an error
  bool end = false;
  core::Event event;
};

Step Next(Sensor& s) {
  Step step;
  auto r = s.Next(&step.event);
  if (!r.has_value()) {
    step.error = r.error().message();
    EXPECT_FALSE(step.error.empty());
  } else {
    step.end = *r == ReadOutcome::kEnd;
  }
  return step;
}

TEST(AdfaReplaySensorTest, EmitsEventsAndOneStreamEndPerTraceAndSkipsBadTraces) {
  TempDir dir;
  std::vector<AdfaTrace> traces(3);
  traces[0].path = dir.Write("a.txt", "3 5");
  traces[0].id = "T/a.txt";
  traces[1].path = dir.Write("b.txt", "3 oops");
  traces[1].id = "T/b.txt";
  traces[2].path = dir.Write("c.txt", "6");
  traces[2].id = "T/c.txt";
  AdfaReplaySensor sensor(traces, "lab-host");
  EXPECT_EQ(sensor.name(), "replay:adfa-ld");

  std::vector<Step> steps;
  for (int i = 0; i < 10; ++i) {
    steps.push_back(Next(sensor));
    if (steps.back().end) break;
  }
  ASSERT_EQ(steps.size(), 7u);
  // Trace a: two syscalls then its end.
  for (int i : {0, 1, 2}) {
    ASSERT_TRUE(steps[i].error.empty()) << steps[i].error;
    EXPECT_EQ(steps[i].event.stream, "T/a.txt");
    EXPECT_EQ(steps[i].event.proc.pid, 1000u);
    EXPECT_EQ(steps[i].event.host, "lab-host");
    EXPECT_EQ(steps[i].event.source, core::EventSource::kReplay);
  }
  EXPECT_EQ(steps[0].event.kind, EventKind::kSyscall);
  EXPECT_EQ(steps[0].event.syscall.arch, core::Arch::kI386);
  EXPECT_EQ(steps[0].event.syscall.nr, 3);
  EXPECT_EQ(steps[1].event.syscall.nr, 5);
  EXPECT_EQ(steps[2].event.kind, EventKind::kStreamEnd);
  // Trace b fails: one error that names it, and it is skipped.
  EXPECT_TRUE(Contains(steps[3].error, traces[1].path)) << steps[3].error;
  EXPECT_TRUE(Contains(steps[3].error, "token 2")) << steps[3].error;
  // Trace c continues.
  EXPECT_EQ(steps[4].event.kind, EventKind::kSyscall);
  EXPECT_EQ(steps[4].event.syscall.nr, 6);
  EXPECT_EQ(steps[4].event.stream, "T/c.txt");
  EXPECT_EQ(steps[4].event.proc.pid, 1002u);
  EXPECT_EQ(steps[5].event.kind, EventKind::kStreamEnd);
  EXPECT_EQ(steps[5].event.stream, "T/c.txt");
  EXPECT_TRUE(steps[6].end);
  // Sequence numbers count the events emitted.
  EXPECT_EQ(steps[0].event.seq, 1u);
  EXPECT_EQ(steps[5].event.seq, 5u);
  EXPECT_TRUE(Next(sensor).end);  // and the end is sticky
}

TEST(AdfaReplaySensorTest, EmptyTraceIsJustAStreamEnd) {
  TempDir dir;
  std::vector<AdfaTrace> traces(1);
  traces[0].path = dir.Write("e.txt", "");
  traces[0].id = "e";
  AdfaReplaySensor sensor(traces, "");
  const Step s = Next(sensor);
  EXPECT_EQ(s.event.kind, EventKind::kStreamEnd);
  EXPECT_TRUE(Next(sensor).end);
}

TEST(JsonlReplaySensorTest, ReadsGoodLinesSkipsBlanksAndReportsBadLines) {
  TempDir dir;
  const std::string path = dir.Write(
      "events.jsonl",
      R"({"kind":"syscall","syscall":{"arch":"x86_64","nr":0},"proc":{"pid":7,"comm":"sh"}})"
      "\n"
      "\n"
      "   \t \r\n"
      R"({"kind":"file_open","path":"/etc/passwd","seq":40})"
      "\r\n"
      R"({"syscall":{"arch":"i386","nr":3}})"
      "\n"
      R"({"kind":"stream_end"})");  // no final newline
  auto opened = JsonlReplaySensor::Open(path);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  Sensor& s = **opened;
  EXPECT_EQ(s.name(), "replay:jsonl");

  Step a = Next(s);
  ASSERT_TRUE(a.error.empty()) << a.error;
  EXPECT_EQ(a.event.kind, EventKind::kSyscall);
  EXPECT_EQ(a.event.syscall.arch, core::Arch::kX86_64);
  EXPECT_EQ(a.event.proc.comm, "sh");
  EXPECT_EQ(a.event.seq, 1u);  // assigned when the line has none

  Step b = Next(s);
  ASSERT_TRUE(b.error.empty()) << b.error;
  EXPECT_EQ(b.event.kind, EventKind::kFileOpen);
  EXPECT_EQ(b.event.path, "/etc/passwd");
  EXPECT_EQ(b.event.seq, 40u);  // kept when given

  Step c = Next(s);
  EXPECT_EQ(c.error, path + ":5: field \"kind\": missing");

  Step d = Next(s);
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_EQ(d.event.kind, EventKind::kStreamEnd);
  EXPECT_EQ(d.event.seq, 41u);  // continues after the last one seen
  EXPECT_TRUE(Next(s).end);
  EXPECT_TRUE(Next(s).end);
}

TEST(JsonlReplaySensorTest, MissingFileIsNotFound) {
  TempDir dir;
  const std::string path = (dir.path() / "absent.jsonl").string();
  auto r = JsonlReplaySensor::Open(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(r.error().message(), path));
}

TEST(ParsePaceTest, AcceptsEveryForm) {
  auto max = ParsePace("max");
  ASSERT_TRUE(max.has_value());
  EXPECT_EQ(max->mode, Pace::Mode::kMax);
  EXPECT_EQ(ParsePace("")->mode, Pace::Mode::kMax);
  auto rec = ParsePace("recorded");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->mode, Pace::Mode::kRecorded);
  EXPECT_EQ(rec->speed, 1.0);
  auto fast = ParsePace("recorded:2.5");
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(fast->mode, Pace::Mode::kRecorded);
  EXPECT_EQ(fast->speed, 2.5);
  auto rate = ParsePace("50000");
  ASSERT_TRUE(rate.has_value());
  EXPECT_EQ(rate->mode, Pace::Mode::kFixedRate);
  EXPECT_EQ(rate->events_per_second, 50000.0);
  EXPECT_EQ(ParsePace("0.5")->events_per_second, 0.5);
}

TEST(ParsePaceTest, RefusesBadSpecsNamingThem) {
  for (const char* spec :
       {"recorded:", "recorded:0", "recorded:-1", "recorded:x", "recorded:2x", "recorded:inf",
        "recorded:nan", "recordedx", "0", "-5", "fast", "100eps", "1e10", "nan", "inf"}) {
    auto r = ParsePace(spec);
    ASSERT_FALSE(r.has_value()) << spec;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(r.error().message(), std::string("\"") + spec + "\""))
        << r.error().ToString();
  }
}

// Replays a fixed list of results.
class ScriptedSensor final : public Sensor {
 public:
  explicit ScriptedSensor(std::vector<core::Result<core::Event>> script)
      : script_(std::move(script)) {}
  std::string_view name() const override { return "scripted"; }
  core::Result<ReadOutcome> Next(core::Event* out) override {
    if (next_ >= script_.size()) return ReadOutcome::kEnd;
    const auto& r = script_[next_++];
    if (!r.has_value()) return r.error();
    *out = r.value();
    return ReadOutcome::kEvent;
  }

 private:
  std::vector<core::Result<core::Event>> script_;
  size_t next_ = 0;
};

core::Event At(int64_t time_ns) {
  core::Event e;
  e.time_ns = time_ns;
  return e;
}

// A fake SleepUntil that records each deadline and moves the fake clock there.
struct FakeSleeper {
  core::FakeClock* clock;
  std::vector<int64_t>* deadlines;
  void operator()(int64_t due) const {
    deadlines->push_back(due);
    clock->Advance(due - clock->MonotonicNanos());
  }
};

std::vector<core::Result<core::Event>> Events(std::initializer_list<int64_t> times) {
  std::vector<core::Result<core::Event>> out;
  for (int64_t t : times) out.emplace_back(At(t));
  return out;
}

TEST(PacedSensorTest, FixedRateSpacesEventsEvenly) {
  ScriptedSensor inner(Events({0, 0, 0, 0, 0}));
  core::FakeClock clock;
  clock.Advance(5'000'000'000);  // any origin
  std::vector<int64_t> deadlines;
  PacedSensor paced(inner, *ParsePace("10"), clock, FakeSleeper{&clock, &deadlines});
  EXPECT_EQ(paced.name(), "scripted");
  const int64_t start = clock.MonotonicNanos();
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(Next(paced).end);
  EXPECT_TRUE(Next(paced).end);
  const int64_t ms = 1'000'000;
  EXPECT_EQ(deadlines, (std::vector<int64_t>{start + 100 * ms, start + 200 * ms, start + 300 * ms,
                                             start + 400 * ms}));
  EXPECT_EQ(clock.MonotonicNanos(), start + 400 * ms);
}

TEST(PacedSensorTest, FixedRateDoesNotSleepWhenBehind) {
  ScriptedSensor inner(Events({0, 0, 0}));
  core::FakeClock clock;
  std::vector<int64_t> deadlines;
  PacedSensor paced(inner, *ParsePace("10"), clock, FakeSleeper{&clock, &deadlines});
  ASSERT_FALSE(Next(paced).end);
  clock.Advance(1'000'000'000);  // the consumer was slow: both later events are already due
  ASSERT_FALSE(Next(paced).end);
  ASSERT_FALSE(Next(paced).end);
  EXPECT_TRUE(deadlines.empty());
}

TEST(PacedSensorTest, RecordedFollowsTimestampsAtSpeed) {
  const int64_t s = 1'000'000'000;
  ScriptedSensor inner(Events({100 * s, 101 * s, 0, 102 * s, 102 * s}));
  core::FakeClock clock;
  std::vector<int64_t> deadlines;
  PacedSensor paced(inner, *ParsePace("recorded:2"), clock, FakeSleeper{&clock, &deadlines});
  const int64_t start = clock.MonotonicNanos();
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(Next(paced).end);
  // Twice as fast: 1 s of recording takes 0.5 s; the event without time is not delayed.
  EXPECT_EQ(deadlines, (std::vector<int64_t>{start + s / 2, start + s}));
}

TEST(PacedSensorTest, MaxNeverSleepsAndErrorsPassThrough) {
  std::vector<core::Result<core::Event>> script = Events({0, 5'000'000'000});
  script.insert(script.begin() + 1, core::InvalidArgument("x.jsonl:2: field \"kind\": missing"));
  ScriptedSensor inner(std::move(script));
  core::FakeClock clock;
  std::vector<int64_t> deadlines;
  PacedSensor paced(inner, Pace{}, clock, FakeSleeper{&clock, &deadlines});
  EXPECT_TRUE(Next(paced).error.empty());
  EXPECT_EQ(Next(paced).error, "x.jsonl:2: field \"kind\": missing");
  EXPECT_TRUE(Next(paced).error.empty());
  EXPECT_TRUE(Next(paced).end);
  EXPECT_TRUE(deadlines.empty());
}

}  // namespace
}  // namespace vigil::sensor
