#include "agent/replay_runner.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "collect_sink.h"
#include "core/clock.h"
#include "model/sequence_model.h"

namespace vigil::agent {
namespace {

// Replays a fixed list of events, with optional read errors at given positions.
class VectorSensor final : public sensor::Sensor {
 public:
  explicit VectorSensor(std::vector<core::Event> events) : events_(std::move(events)) {}
  std::string_view name() const override { return "vector"; }
  core::Result<sensor::ReadOutcome> Next(core::Event* out) override {
    if (error_at_.count(pos_) && !errored_[pos_]) {
      errored_[pos_] = true;
      return core::InvalidArgument("bad input at " + std::to_string(pos_));
    }
    if (pos_ >= events_.size()) return sensor::ReadOutcome::kEnd;
    *out = events_[pos_++];
    return sensor::ReadOutcome::kEvent;
  }
  std::map<size_t, bool> error_at_;

 private:
  std::vector<core::Event> events_;
  size_t pos_ = 0;
  std::map<size_t, bool> errored_;
};

using testing::CollectSink;

core::Event Syscall(const std::string& stream, int nr) {
  core::Event e;
  e.kind = core::EventKind::kSyscall;
  e.stream = stream;
  e.proc.comm = "svc";
  e.proc.pid = 7;
  e.syscall = {core::Arch::kX86_64, nr};
  return e;
}

class ReplayRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<model::TrainingTrace> traces;
    for (int i = 0; i < 10; ++i) {
      model::TrainingTrace t;
      t.subject = "svc";
      t.arch = core::Arch::kX86_64;
      for (int r = 0; r < 30; ++r) t.syscalls.insert(t.syscalls.end(), {0, 1, 3, 0, 1});
      traces.push_back(t);
    }
    model::SequenceModelOptions o;
    o.min_subject_traces = 5;
    auto m = model::SequenceModel::Train(traces, o);
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    model_ = std::move(m).value();
  }

  // `streams` normal streams of `len` events, each closed by a kStreamEnd; plus one unclosed odd
  // stream at the end.
  std::vector<core::Event> Workload(int streams, int len) {
    std::vector<core::Event> ev;
    const int pattern[] = {0, 1, 3, 0, 1};
    for (int s = 0; s < streams; ++s) {
      for (int i = 0; i < len; ++i) ev.push_back(Syscall("s" + std::to_string(s), pattern[i % 5]));
      core::Event end;
      end.kind = core::EventKind::kStreamEnd;
      end.stream = "s" + std::to_string(s);
      ev.push_back(end);
    }
    for (int i = 0; i < len; ++i) ev.push_back(Syscall("odd", 59 + i % 3));
    return ev;
  }

  std::unique_ptr<model::SequenceModel> model_;
  core::FakeClock clock_;
};

TEST_F(ReplayRunnerTest, OneVerdictPerStreamAndNothingLostUnderBlock) {
  for (int workers : {1, 2, 3}) {
    VectorSensor sensor(Workload(20, 50));
    CollectSink sink;
    ReplayOptions o;
    o.workers = workers;
    o.queue_capacity = 4;  // tiny: the reader must block, never drop
    ReplayRunner runner(*model_, {&sink}, o, clock_);
    auto stats = runner.Run(sensor, nullptr);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->read, 20u * 51 + 50);
    EXPECT_EQ(stats->scored, 20u * 50 + 50);
    EXPECT_EQ(stats->queue.dropped_full + stats->queue.evicted + stats->queue.sampled_out, 0u);
    ASSERT_EQ(sink.lines.size(), 21u) << "workers=" << workers;
    std::map<std::string, nlohmann::json> by;
    for (auto& j : sink.lines) by[j["vigil"]["stream"]] = j;
    EXPECT_EQ(by.size(), 21u);
    EXPECT_EQ(by["s3"]["vigil"]["events"], 50);
    EXPECT_FALSE(by["s3"]["vigil"]["anomalous"].get<bool>());
    // The unclosed stream still gets its verdict at the end of input.
    EXPECT_TRUE(by["odd"]["vigil"]["anomalous"].get<bool>());
    EXPECT_EQ(by["odd"]["process"]["name"], "svc");
  }
}

TEST_F(ReplayRunnerTest, InvalidEventsAreRejectedAndCounted) {
  auto ev = Workload(2, 10);
  ev[3].syscall.arch = core::Arch::kUnknown;
  ev[5].syscall.nr = 100000;
  VectorSensor sensor(ev);
  CollectSink sink;
  ReplayRunner runner(*model_, {&sink}, {}, clock_);
  auto stats = runner.Run(sensor, nullptr);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->validation.rejected, 2u);
  EXPECT_EQ(stats->scored, 2u * 10 + 10 - 2);
}

TEST_F(ReplayRunnerTest, ReadErrorsAreReportedAndTheRunGoesOn) {
  VectorSensor sensor(Workload(3, 10));
  sensor.error_at_[4] = true;
  sensor.error_at_[12] = true;
  CollectSink sink;
  std::vector<std::string> errors;
  ReplayRunner runner(*model_, {&sink}, {}, clock_);
  auto stats = runner.Run(sensor, [&](const core::Status& st) { errors.push_back(st.message()); });
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->read_errors, 2u);
  EXPECT_EQ(errors, (std::vector<std::string>{"bad input at 4", "bad input at 12"}));
  EXPECT_EQ(sink.lines.size(), 4u);
}

TEST_F(ReplayRunnerTest, AnomalousOnlyWritesOnlyAnomalousVerdicts) {
  VectorSensor sensor(Workload(5, 40));
  CollectSink sink;
  ReplayOptions o;
  o.emit_all = false;
  ReplayRunner runner(*model_, {&sink}, o, clock_);
  auto stats = runner.Run(sensor, nullptr);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->streams, 6u);
  ASSERT_EQ(sink.lines.size(), 1u);
  EXPECT_EQ(sink.lines[0]["vigil"]["stream"], "odd");
}

TEST_F(ReplayRunnerTest, TypedEventsGoToTheSinksAsOcsfActivityWhenAsked) {
  std::vector<core::Event> ev = Workload(2, 20);
  core::Event open;
  open.kind = core::EventKind::kFileOpen;
  open.stream = "s0";
  open.proc = {.pid = 7, .comm = "svc"};
  open.path = "/etc/passwd";
  ev.insert(ev.begin() + 3, open);
  core::Event conn;
  conn.kind = core::EventKind::kNetConnect;
  conn.stream = "s1";
  conn.proc = {.pid = 8, .comm = "svc"};
  conn.net = {.daddr = "10.0.0.1", .dport = 443, .protocol = 6};
  ev.insert(ev.begin() + 30, conn);
  for (bool emit : {false, true}) {
    VectorSensor sensor(ev);
    CollectSink sink;
    ReplayOptions o;
    o.emit_events = emit;
    ReplayRunner runner(*model_, {&sink}, o, clock_);
    auto stats = runner.Run(sensor, nullptr);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->verdicts, 3u);
    EXPECT_EQ(stats->events_written, emit ? 2u : 0u);
    std::vector<int> classes;
    for (const auto& line : sink.lines) classes.push_back(line["class_uid"].get<int>());
    std::sort(classes.begin(), classes.end());
    if (emit) {
      EXPECT_EQ(classes, (std::vector<int>{1001, 2004, 2004, 2004, 4001}));
    } else {
      EXPECT_EQ(classes, (std::vector<int>{2004, 2004, 2004}));
    }
    for (const auto& line : sink.lines) {
      if (line["class_uid"] == 1001) {
        EXPECT_EQ(line["file"]["path"], "/etc/passwd");
      }
      if (line["class_uid"] == 4001) {
        EXPECT_EQ(line["dst_endpoint"]["port"], 443);
      }
    }
  }
}

// Sets only some fields of each event: the first event's path, then only pid and number.
class PartialSensor final : public sensor::Sensor {
 public:
  explicit PartialSensor(bool whole) : whole_(whole) {}
  std::string_view name() const override { return "partial"; }
  bool AssignsWholeEvent() const override { return whole_; }
  core::Result<sensor::ReadOutcome> Next(core::Event* out) override {
    if (n_ == 200) return sensor::ReadOutcome::kEnd;
    if (whole_) *out = core::Event();  // what a sensor that claims whole events must do
    out->kind = n_ == 0 ? core::EventKind::kFileOpen : core::EventKind::kTypedCall;
    if (n_ == 0) out->path = "/only/the/first/event/has/this/path";
    out->proc.pid = 7;
    out->proc.comm = "svc";
    out->syscall = {core::Arch::kX86_64, 263};
    out->seq = ++n_;
    return sensor::ReadOutcome::kEvent;
  }

 private:
  bool whole_;
  uint64_t n_ = 0;
};

// Records the path each typed event arrived with.
class PathHandler final : public StreamHandler {
 public:
  explicit PathHandler(std::mutex& mu, std::vector<std::string>& paths)
      : mu_(mu), paths_(paths) {}
  bool OnEvent(core::Event& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    paths_.push_back(e.path);
    return false;
  }
  void OnInputEnd() override {}

 private:
  std::mutex& mu_;
  std::vector<std::string>& paths_;
};

TEST_F(ReplayRunnerTest, EventsOfAPartialSensorStartFreshAndWholeOnesArriveIntact) {
  for (bool whole : {false, true}) {
    PartialSensor sensor(whole);
    std::mutex mu;
    std::vector<std::string> paths;
    ReplayOptions o;
    o.workers = 2;
    ReplayRunner runner(
        [&](VerdictSink&) { return std::make_unique<PathHandler>(mu, paths); }, {}, o, clock_);
    auto stats = runner.Run(sensor, nullptr);
    ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
    ASSERT_EQ(paths.size(), 200u) << "whole " << whole;
    EXPECT_EQ(std::count(paths.begin(), paths.end(), "/only/the/first/event/has/this/path"), 1)
        << "whole " << whole << ": a path leaked into later events";
  }
}

TEST_F(ReplayRunnerTest, RefusesBadOptions) {
  VectorSensor sensor({});
  CollectSink sink;
  ReplayOptions o;
  o.workers = 0;
  ReplayRunner runner(*model_, {&sink}, o, clock_);
  auto stats = runner.Run(sensor, nullptr);
  ASSERT_FALSE(stats.has_value());
  EXPECT_EQ(stats.error().code(), core::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil::agent
