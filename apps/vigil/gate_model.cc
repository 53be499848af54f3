#include "apps/vigil/gate_model.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/clock.h"
#include "model/loader.h"

namespace vigil::app {
namespace {

// x86-64 system-call numbers of the calls the gates hold.
constexpr int32_t kExecveNr = 59;
constexpr int32_t kOpenatNr = 257;
constexpr int32_t kConnectNr = 42;

}  // namespace

int32_t GateCallToken(const core::Event& e) {
  switch (e.kind) {
    case core::EventKind::kProcessExec:
      return kExecveNr;
    case core::EventKind::kFileOpen:
      return kOpenatNr;
    case core::EventKind::kNetConnect:
      return kConnectNr;
    default:
      return -1;
  }
}

EngineVerdictSource::EngineVerdictSource(model::InferenceEngine* engine, GateModelOptions options)
    : engine_(engine), options_(options) {}

void EngineVerdictSource::Observe(const policy::EvalInput& in) {
  const core::Event& e = *in.event;
  const int32_t token = GateCallToken(e);
  if (token < 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = histories_.find(e.proc.pid);
  if (it == histories_.end()) {
    if (histories_.size() >= options_.max_processes) histories_.clear();  // bounded
    it = histories_.emplace(e.proc.pid, History{e.proc.comm, {}}).first;
  }
  History& h = it->second;
  if (e.kind == core::EventKind::kProcessExec) {  // another program from here on
    h.calls.clear();
    h.subject = e.proc.comm;
  }
  h.calls.push_back(token);
  if (h.calls.size() > options_.window) h.calls.pop_front();
}

core::Result<core::Verdict> EngineVerdictSource::Score(const policy::EvalInput& in,
                                                       int64_t deadline_ns) {
  const core::Event& e = *in.event;
  std::string subject;
  std::vector<int32_t> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = histories_.find(e.proc.pid);
    if (it != histories_.end()) {
      subject = it->second.subject;
      calls.assign(it->second.calls.begin(), it->second.calls.end());
    }
  }
  if (calls.empty()) {  // not observed (a caller that skipped Observe): the call alone
    const int32_t token = GateCallToken(e);
    if (token < 0) return core::InvalidArgument("gate model: not a gated call");
    subject = e.proc.comm;
    calls.push_back(token);
  }
  const int64_t left = deadline_ns - core::SystemClock::Get().MonotonicNanos();
  if (left <= 0) return core::Unavailable("gate model: the call's deadline has passed");
  const model::FeatureView view{subject, core::Arch::kX86_64, calls, {}};
  model::EngineVerdict v = engine_->ScoreSync(view, left / 5 * 4);
  if (v.fallback()) {
    return core::Unavailable("model " + std::string(model::FallbackReasonName(v.reason)));
  }
  v.verdict.pid = e.proc.pid;
  v.verdict.uid = e.proc.uid;
  return std::move(v.verdict);
}

core::Result<std::unique_ptr<GateCallRecorder>> GateCallRecorder::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) {
    return core::InvalidArgument("--record-calls " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<GateCallRecorder>(new GateCallRecorder(path, f));
}

GateCallRecorder::~GateCallRecorder() { (void)Close(); }

void GateCallRecorder::Record(const core::Event& e) {
  const int32_t token = GateCallToken(e);
  if (token < 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ == nullptr || failed_) return;
  uint32_t& execs = execs_[e.proc.pid];
  if (e.kind == core::EventKind::kProcessExec) ++execs;
  const nlohmann::json line = {{"schema", "vigil.event/v1"},
                               {"source", std::string(core::EventSourceName(e.source))},
                               {"kind", "syscall"},
                               {"seq", ++seq_},
                               {"stream", std::to_string(e.proc.pid) + "." + std::to_string(execs)},
                               {"proc",
                                {{"pid", e.proc.pid},
                                 {"ppid", e.proc.ppid},
                                 {"uid", e.proc.uid},
                                 {"comm", e.proc.comm},
                                 {"exe", e.proc.exe}}},
                               {"syscall", {{"arch", "x86_64"}, {"nr", token}}}};
  const std::string text = line.dump() + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) {
    failed_ = true;
    return;
  }
  ++written_;
}

core::Status GateCallRecorder::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ == nullptr) return core::Status::Ok();
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (failed_ || !flushed || !closed) {
    failed_ = true;
    return core::Unavailable("--record-calls " + path_ + ": write failed: " + std::strerror(errno));
  }
  return core::Status::Ok();
}

uint64_t GateCallRecorder::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

namespace {

// OK when `model` scores a window of one execve; else why not (without naming the file).
core::Status ScoresGateCalls(const model::Model& model) {
  const int32_t probe[] = {kExecveNr};
  auto v = model.Score(model::FeatureView{"", core::Arch::kX86_64, probe, {}});
  if (!v.has_value()) {
    return core::InvalidArgument(
        "a " + model.family() + " model does not score system-call sequences (" +
        v.error().message() + "); train one with vigil train --model-type sequence");
  }
  return core::Status::Ok();
}

}  // namespace

core::Status CheckGateModel(const model::Model& model, const std::string& path) {
  return ScoresGateCalls(model).WithContext("--model " + path);
}

core::Status CheckGateModelFile(const model::ModelFile& file, const std::string& source) {
  if (model::HeaderString(file, "name") == kHostBaselineName) {
    return core::InvalidArgument(
        source + ": the model is a host baseline (name " + std::string(kHostBaselineName) +
        "), which vigil agent learns on each host itself; it is not a gate model");
  }
  auto m = model::LoadModelFromFile(file, source);
  if (!m.has_value()) return m.error();
  return ScoresGateCalls(**m).WithContext(source);
}

}  // namespace vigil::app
