#pragma once

// Synthetic i386 traces shared by the model tests: normal traces from a small grammar of file
// access loops, one rare call (setuid) that appears once in a corpus, and an attack trace that
// repeats rare calls in orders never seen.

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/sequence_model.h"

namespace vigil::model::synthetic {

// i386 numbers (ADFA-LD's table).
inline constexpr int32_t kRead = 3, kWrite = 4, kOpen = 5, kClose = 6, kExecve = 11,
                         kSetuid = 23, kBrk = 45, kMmap2 = 192, kStat64 = 195;

inline std::vector<int32_t> NormalTrace(std::mt19937& rng) {
  std::vector<int32_t> t = {kExecve, kBrk, kMmap2, kMmap2};
  const int loops = 5 + static_cast<int>(rng() % 10);
  for (int i = 0; i < loops; ++i) {
    if (rng() % 3 == 0) {
      t.insert(t.end(), {kStat64, kOpen, kRead, kClose});
    } else {
      t.insert(t.end(), {kOpen, kRead, kRead, kClose});
    }
    if (rng() % 4 == 0) t.push_back(kWrite);
  }
  t.push_back(kWrite);
  return t;
}

// Normal traces with one rare call (setuid, once) so that it is in the vocabulary.
inline std::vector<TrainingTrace> Corpus(size_t n, const std::string& subject, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<TrainingTrace> out;
  for (size_t i = 0; i < n; ++i) {
    TrainingTrace t;
    t.subject = subject;
    t.arch = core::Arch::kI386;
    t.syscalls = NormalTrace(rng);
    out.push_back(std::move(t));
  }
  out[0].syscalls.insert(out[0].syscalls.begin() + 2, kSetuid);
  return out;
}

// The verdict of a new stream of `m` on the i386 calls `s`.
inline core::Verdict Score(const Model& m, const std::vector<int32_t>& s) {
  auto stream = m.NewStream("");
  stream->ObserveSyscalls(core::Arch::kI386, s);
  return stream->Current();
}

// Model::Score on the window `s` gives the verdict a new stream fed `s` gives, field by field
// (families override Score to keep the stream off the heap).
inline void ExpectRequestMatchesStream(const Model& m, const std::vector<int32_t>& s) {
  const core::Verdict want = Score(m, s);
  auto got = m.Score({"", core::Arch::kI386, s, {}});
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->score, want.score);
  EXPECT_EQ(got->anomalous, want.anomalous);
  EXPECT_EQ(got->events, want.events);
  EXPECT_EQ(got->subject, want.subject);
  EXPECT_EQ(got->model_name, want.model_name);
  ASSERT_EQ(got->explanation.size(), want.explanation.size());
  for (size_t i = 0; i < want.explanation.size(); ++i) {
    EXPECT_EQ(got->explanation[i].what, want.explanation[i].what);
    EXPECT_EQ(got->explanation[i].weight, want.explanation[i].weight);
  }
  const std::vector<float> x = {0.5f};
  EXPECT_FALSE(m.Score({"", core::Arch::kI386, {}, x}).has_value());  // vectors are refused
}

// A new stream of `m` fed `t` one kSyscall event at a time, then one event of another kind
// (which the stream families ignore).
inline std::unique_ptr<StreamScorer> StreamOfEvents(const Model& m, const std::vector<int32_t>& t) {
  auto stream = m.NewStream("");
  core::Event e;
  e.kind = core::EventKind::kSyscall;
  e.syscall.arch = core::Arch::kI386;
  for (int32_t nr : t) {
    e.syscall.nr = nr;
    stream->Observe(e);
  }
  e.kind = core::EventKind::kProcessExec;
  stream->Observe(e);
  return stream;
}

// Every cut of `good`'s payload (lengths 0, then steps of 1 + len / `step`) is refused by
// `from_file(file, source)` with kDataLoss naming the source, and so is one trailing byte.
template <typename FromFile>
void ExpectCutsAndTrailingBytesRefused(const ModelFile& good, FromFile from_file, size_t step) {
  for (size_t len = 0; len < good.payload.size(); len += 1 + len / step) {
    ModelFile f = good;
    f.payload.resize(len);
    auto m = from_file(f, "cut.vmdl");
    ASSERT_FALSE(m.has_value()) << "length " << len;
    EXPECT_EQ(m.error().code(), core::StatusCode::kDataLoss);
    EXPECT_NE(m.error().message().find("cut.vmdl"), std::string::npos);
  }
  ModelFile longer = good;
  longer.payload += "x";
  EXPECT_FALSE(from_file(longer, "f").has_value());
}

inline std::vector<int32_t> AttackTrace() {
  std::mt19937 rng(99);
  std::vector<int32_t> t = NormalTrace(rng);
  for (int i = 0; i < 4; ++i) t.insert(t.end(), {kSetuid, kExecve, kWrite, kSetuid, kSetuid});
  return t;
}

}  // namespace vigil::model::synthetic
