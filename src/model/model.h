#pragma once

// The contract between the pipeline and every model family. A Model is immutable once built and
// may be shared by many threads; each stream of events (one trace, one process lifetime) gets its
// own StreamScorer, which is not thread-safe and is owned by the caller.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/event.h"
#include "core/status.h"

namespace vigil::model {

// The most features, signals or calls any family names in one explanation (options and model
// files are checked against it).
inline constexpr int kMaxExplainTop = 64;

class StreamScorer {
 public:
  virtual ~StreamScorer() = default;
  // Feeds one event of the stream. Events a family does not use are ignored. Never fails: bad
  // values (an unknown syscall number) are scored as the unknown token.
  virtual void Observe(const core::Event& event) = 0;
  // Feeds a run of system calls of one architecture (replay and benchmarks); the same as
  // calling Observe on each as a kSyscall event.
  virtual void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) {
    core::Event e;
    e.kind = core::EventKind::kSyscall;
    e.syscall.arch = arch;
    for (int32_t nr : nrs) {
      e.syscall.nr = nr;
      Observe(e);
    }
  }
  // The verdict on everything observed so far (score 0 and no explanation before any event).
  virtual core::Verdict Current() const = 0;
  // Events that contributed to the score.
  virtual uint64_t observed() const = 0;
};

// The features of one stateless scoring request (model::Model::Score): a window of system calls
// (sequence families) and/or a feature vector (tabular families). Views: the caller keeps the data
// alive for the duration of the call.
struct FeatureView {
  std::string_view subject;           // the program, as for NewStream
  core::Arch arch = core::Arch::kUnknown;
  std::span<const int32_t> syscalls;  // a window of system calls, oldest first
  std::span<const float> values;      // a feature vector in the family's feature order
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const std::string& family() const = 0;   // e.g. "syscall-ngram"
  virtual const std::string& name() const = 0;     // the model's given name
  virtual const std::string& version() const = 0;
  // A scorer for a new stream of program `subject` (the process's comm; "" when unknown).
  virtual std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const = 0;
  // Scores one request without keeping stream state; thread-safe. The default scores
  // `request.syscalls` through a fresh stream of `request.subject` (the same verdict as a stream
  // fed that window) and refuses a request with only a feature vector (kInvalidArgument naming
  // the family); families that score vectors override it. Errors never leave the model in a
  // different state.
  virtual core::Result<core::Verdict> Score(const FeatureView& request) const;
};

}  // namespace vigil::model
