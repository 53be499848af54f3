#pragma once

// The frame shared by stream scorers whose raw score is compared with a held-out calibration
// (the recurrent and the sequence-covering families): system-call events go to the derived
// class's Push(arch, nr), other events are ignored, and Verdict() maps a raw score through the
// model's calibration and names the recorded calls.

#include <cstdint>
#include <span>

#include "core/event.h"
#include "model/internal/top_calls.h"
#include "model/model.h"

namespace vigil::model::internal {

template <typename Derived>
class CalibratedSyscallStream : public StreamScorer {
 public:
  void Observe(const core::Event& e) override {
    if (e.kind != core::EventKind::kSyscall) return;
    static_cast<Derived&>(*this).Push(e.syscall.arch, e.syscall.nr);
  }
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    for (int32_t nr : nrs) static_cast<Derived&>(*this).Push(arch, nr);
  }

 protected:
  // The verdict of `model` (name(), version(), ScoreFromRaw(), calibration().threshold) on a
  // stream of `events` calls whose raw score `raw()` gives; raw is not asked for before a call.
  template <typename M, typename RawFn>
  static core::Verdict Verdict(const M& model, uint64_t events, RawFn raw, const TopCalls& top) {
    core::Verdict v;
    v.model_name = model.name();
    v.model_version = model.version();
    v.events = events;
    if (events == 0) return v;
    const double r = raw();
    v.score = model.ScoreFromRaw(r);
    v.anomalous = r >= model.calibration().threshold;
    top.AppendTo(&v.explanation);
    return v;
  }
};

}  // namespace vigil::model::internal
