#pragma once

// The model at a gate (`vigil run --model`, `vigil gate --model`): an enforce::VerdictSource that
// scores, through model::InferenceEngine (deadline, circuit breaker, verdict cache), the sequence
// of gated calls of the process behind each call.
//
// What the model sees. A gate sees only the calls it holds, not a process's whole system-call
// stream, so the model scores the per-process sequence of gated calls: each call is one token,
// the x86-64 number of its system call as the kernel's table names it — execve (59) for an exec
// (also execveat and the fanotify gate's exec), openat (257) for an open (open, openat, openat2
// and the fanotify gate's open) and connect (42) — and an exec starts a new sequence (the process
// becomes another program; the model's subject is the program's name, proc.name). A sequence
// model of system calls (family syscall-ngram, `vigil train --model-type sequence`) trained on
// such sequences ("kind":"syscall" events, one stream per process and program, see
// docs/gates.md "The model") scores how unusual the last `window` calls are for that program.
//
// Failures. Each Score asks the engine with a budget of four fifths of the time left to the
// call's deadline; a model that errs, runs past that budget, or is turned away by the open
// breaker gives an error, and the gate applies the candidate rules' fallback at once (counted as
// a model_error fallback). The breaker opens after repeated failures, so a model that hangs
// costs the calls behind it nothing while it is open.
//
// Thread-safety: Observe and Score may be called from any thread.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "enforce/gate.h"
#include "model/inference_engine.h"
#include "model/model.h"
#include "model/model_file.h"

namespace vigil::app {

// The token of a gated call (its x86-64 system-call number), or -1 for a kind a gate never holds.
int32_t GateCallToken(const core::Event& e);

struct GateModelOptions {
  size_t window = 16;            // the last calls of a process scored, 1..1024
  size_t max_processes = 16384;  // histories kept; all are dropped when a new one would exceed it
};

class EngineVerdictSource final : public enforce::VerdictSource {
 public:
  // `engine` must outlive the source.
  EngineVerdictSource(model::InferenceEngine* engine, GateModelOptions options);

  void Observe(const policy::EvalInput& in) override;
  core::Result<core::Verdict> Score(const policy::EvalInput& in, int64_t deadline_ns) override;

 private:
  struct History {
    std::string subject;
    std::deque<int32_t> calls;  // the last `window` tokens, oldest first
  };

  model::InferenceEngine* engine_;
  const GateModelOptions options_;
  std::mutex mu_;
  std::unordered_map<uint32_t, History> histories_;  // by process (thread group) id
};

// Records what a gate saw in the form the gate model learns from (`--record-calls FILE`): one
// event line (docs/event-schema.md) per decided call, "kind":"syscall" with the call's token as
// `nr`, arch x86_64, proc.pid and proc.comm, and stream "<pid>.<n>" where n counts the execs of
// that process seen so far (an exec starts a new sequence, as for scoring). `vigil train
// --model-type sequence --dataset jsonl --data FILE` trains on it. Thread-safe.
class GateCallRecorder {
 public:
  // Creates (truncates) `path`; kInvalidArgument naming it when it cannot.
  static core::Result<std::unique_ptr<GateCallRecorder>> Open(const std::string& path);
  ~GateCallRecorder();
  GateCallRecorder(const GateCallRecorder&) = delete;
  GateCallRecorder& operator=(const GateCallRecorder&) = delete;

  void Record(const core::Event& e);
  // Flushes and closes the file; the first write error, naming the file.
  core::Status Close();
  uint64_t written() const;

 private:
  GateCallRecorder(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  mutable std::mutex mu_;
  std::FILE* file_;
  bool failed_ = false;
  uint64_t written_ = 0;
  uint64_t seq_ = 0;
  std::unordered_map<uint32_t, uint32_t> execs_;  // by process id: execs seen
};

// Checks that `model` scores system-call sequences (a window of one execve is scored without an
// error); kInvalidArgument naming `path` and the family otherwise.
core::Status CheckGateModel(const model::Model& model, const std::string& path);

// The name vigil agent gives the per-program baseline it learns on its host.
inline constexpr std::string_view kHostBaselineName = "host-baseline";

// Whether a decoded model file (a model rolled out by the hub) is a gate model, judged from its
// header and then its contents: not a host baseline (header name kHostBaselineName: learned by
// each agent on its own host), a family that loads, and a model that scores system-call
// sequences. kInvalidArgument naming `source` and what it is otherwise.
core::Status CheckGateModelFile(const model::ModelFile& file, const std::string& source);

}  // namespace vigil::app
