#include "sensor/replay.h"

#include <time.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/event_json.h"

namespace vigil::sensor {

using core::Result;

AdfaReplaySensor::AdfaReplaySensor(std::vector<AdfaTrace> traces, std::string host)
    : traces_(std::move(traces)), host_(std::move(host)) {}

Result<ReadOutcome> AdfaReplaySensor::Next(core::Event* out) {
  while (trace_ < traces_.size()) {
    const AdfaTrace& t = traces_[trace_];
    if (!loaded_) {
      auto s = ReadAdfaTrace(t.path);
      if (!s.has_value()) {
        ++trace_;
        return s.error();
      }
      syscalls_ = std::move(s).value();
      pos_ = 0;
      loaded_ = true;
    }
    core::Event& e = *out;
    e.source = core::EventSource::kReplay;
    e.seq = ++seq_;
    e.time_ns = 0;  // ADFA-LD records no time
    e.host = host_;
    e.stream = t.id;
    e.proc = core::ProcessIdentity{};
    e.proc.pid = e.proc.tid = static_cast<uint32_t>(1000 + trace_);
    if (pos_ < syscalls_.size()) {
      e.kind = core::EventKind::kSyscall;
      e.syscall.arch = core::Arch::kI386;
      e.syscall.nr = syscalls_[pos_++];
      return ReadOutcome::kEvent;
    }
    e.kind = core::EventKind::kStreamEnd;
    e.syscall = core::SyscallPayload{};
    loaded_ = false;
    ++trace_;
    return ReadOutcome::kEvent;
  }
  return ReadOutcome::kEnd;
}

Result<std::vector<AdfaTrace>> ListAdfaSplits(const std::string& root, const std::string& splits) {
  std::vector<AdfaSplit> which;
  if (splits == "training") which = {AdfaSplit::kTraining};
  else if (splits == "validation") which = {AdfaSplit::kValidation};
  else if (splits == "attack") which = {AdfaSplit::kAttack};
  else if (splits == "all") which = {AdfaSplit::kTraining, AdfaSplit::kValidation, AdfaSplit::kAttack};
  else if (splits == "eval") which = {AdfaSplit::kValidation, AdfaSplit::kAttack};
  else {
    return core::InvalidArgument("unknown ADFA-LD split \"" + splits +
                                 "\" (use training, validation, attack, eval or all)");
  }
  std::vector<AdfaTrace> out;
  for (AdfaSplit s : which) {
    auto list = ListAdfaTraces(root, s);
    if (!list.has_value()) return list.error();
    out.insert(out.end(), list->begin(), list->end());
  }
  return out;
}

Result<std::unique_ptr<JsonlReplaySensor>> JsonlReplaySensor::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<JsonlReplaySensor>(new JsonlReplaySensor("<stdin>", stdin, false));
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return core::NotFound(path + ": cannot open event file: " + std::strerror(errno));
  }
  return std::unique_ptr<JsonlReplaySensor>(new JsonlReplaySensor(path, f, true));
}

JsonlReplaySensor::JsonlReplaySensor(std::string path, FILE* f, bool owned)
    : path_(std::move(path)), file_(f), owned_(owned) {}

JsonlReplaySensor::~JsonlReplaySensor() {
  if (owned_ && file_ != nullptr) std::fclose(file_);
  std::free(buf_);
}

Result<ReadOutcome> JsonlReplaySensor::Next(core::Event* out) {
  while (true) {
    const ssize_t n = getline(&buf_, &cap_, file_);
    if (n < 0) {
      if (std::ferror(file_)) {
        std::clearerr(file_);
        return core::IoError(path_ + ": read error after line " + std::to_string(line_no_));
      }
      return ReadOutcome::kEnd;
    }
    ++line_no_;
    std::string_view line(buf_, static_cast<size_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;  // blank line
    auto e = core::ParseEventJson(line);
    if (!e.has_value()) {
      return core::InvalidArgument(path_ + ":" + std::to_string(line_no_) + ": " +
                                   e.error().message());
    }
    *out = std::move(e).value();
    if (out->seq == 0) out->seq = seq_ + 1;
    seq_ = out->seq;
    return ReadOutcome::kEvent;
  }
}

Result<Pace> ParsePace(std::string_view spec) {
  Pace p;
  if (spec == "max" || spec.empty()) return p;
  if (spec.substr(0, 8) == "recorded") {
    p.mode = Pace::Mode::kRecorded;
    if (spec.size() == 8) return p;
    if (spec[8] == ':') {
      const std::string s(spec.substr(9));
      char* end = nullptr;
      p.speed = std::strtod(s.c_str(), &end);
      if (end != s.c_str() && *end == '\0' && p.speed > 0 && p.speed < 1e6) return p;
    }
    return core::InvalidArgument("pace \"" + std::string(spec) +
                                 "\": expected recorded:SPEED with SPEED > 0");
  }
  double rate = 0;
  auto [ptr, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), rate);
  if (ec != std::errc() || ptr != spec.data() + spec.size() || !(rate > 0) || rate > 1e9) {
    return core::InvalidArgument("pace \"" + std::string(spec) +
                                 "\": expected max, recorded[:SPEED] or events per second");
  }
  p.mode = Pace::Mode::kFixedRate;
  p.events_per_second = rate;
  return p;
}

PacedSensor::PacedSensor(Sensor& inner, Pace pace, const core::Clock& clock, SleepUntil sleep_until)
    : inner_(inner), pace_(pace), clock_(clock), sleep_until_(std::move(sleep_until)) {}

Result<ReadOutcome> PacedSensor::Next(core::Event* out) {
  auto r = inner_.Next(out);
  if (!r.has_value() || *r == ReadOutcome::kEnd || pace_.mode == Pace::Mode::kMax) return r;
  if (start_mono_ < 0) start_mono_ = clock_.MonotonicNanos();
  int64_t due = start_mono_;
  if (pace_.mode == Pace::Mode::kFixedRate) {
    due += static_cast<int64_t>(static_cast<double>(emitted_) * 1e9 / pace_.events_per_second);
  } else {
    if (out->time_ns <= 0) return r;  // nothing recorded to follow
    if (first_event_ns_ < 0) first_event_ns_ = out->time_ns;
    due += static_cast<int64_t>(static_cast<double>(out->time_ns - first_event_ns_) / pace_.speed);
  }
  ++emitted_;
  if (clock_.MonotonicNanos() < due) sleep_until_(due);
  return r;
}

void RealSleepUntil(int64_t monotonic_ns) {
  timespec ts{};
  ts.tv_sec = monotonic_ns / 1'000'000'000;
  ts.tv_nsec = monotonic_ns % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace vigil::sensor
