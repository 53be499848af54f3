#include "model/cover_model.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/cover_index.h"
#include "model/loader.h"
#include "synthetic_traces.h"

namespace vigil::model {
namespace {

using core::Arch;
using core::StatusCode;
using namespace synthetic;  // NOLINT(google-build-using-namespace): shared fixtures

// An index over token sequences given as strings of letters ('a' = 0, 'b' = 1, ...).
CoverIndex IndexOf(const std::vector<std::string>& corpus) {
  CoverIndex index;
  for (const std::string& s : corpus) {
    index.BeginSequence();
    for (char c : s) index.Append(static_cast<uint32_t>(c - 'a'));
  }
  return index;
}

// Segment lengths of the greedy covering of `s` (letters, or '?' for a token never indexed).
std::vector<uint64_t> Segments(const CoverIndex& index, const std::string& s) {
  CoverWalk walk(index);
  std::vector<uint64_t> out;
  for (char c : s) {
    const uint64_t ended = walk.Push(c == '?' ? 25u : static_cast<uint32_t>(c - 'a'));
    if (ended) out.push_back(ended);
  }
  if (walk.tokens())
    out.push_back(walk.tokens() - [&] {
      uint64_t sum = 0;
      for (uint64_t n : out) sum += n;
      return sum;
    }());
  EXPECT_EQ(out.size(), walk.segments()) << s;
  return out;
}

TEST(CoverIndexTest, EverySubstringOfOneSequenceIsOneWalk) {
  const CoverIndex index = IndexOf({"abcab", "bcd"});
  for (const std::string s : {"abcab", "bca", "cab", "bcd", "b", "ab"}) {
    CoverIndex::State st = CoverIndex::kRoot;
    for (char c : s) st = index.Step(st, static_cast<uint32_t>(c - 'a'));
    EXPECT_NE(st, CoverIndex::kDead) << s;
  }
  // Not substrings of either sequence; "abd" would span both.
  for (const std::string s : {"abd", "cabc", "abcd", "ba", "dd", "e"}) {
    CoverIndex::State st = CoverIndex::kRoot;
    for (char c : s) st = index.Step(st, static_cast<uint32_t>(c - 'a'));
    EXPECT_EQ(st, CoverIndex::kDead) << s;
  }
}

TEST(CoverIndexTest, GreedyCoveringOfKnownCorpus) {
  const CoverIndex index = IndexOf({"abcab", "bcd"});
  // "abcab" itself is one segment; "abcd" is "abc" then "d" (abcd was never seen whole).
  EXPECT_EQ(Segments(index, "abcab"), (std::vector<uint64_t>{5}));
  EXPECT_EQ(Segments(index, "abcd"), (std::vector<uint64_t>{3, 1}));
  // Greedy from the left: "bcab" + "cd"? "bcabc" is not in the corpus, so "bcab" then "cd".
  EXPECT_EQ(Segments(index, "bcabcd"), (std::vector<uint64_t>{4, 2}));
  // Runs never span two training sequences: "b" ends one, "c" starts the next.
  EXPECT_EQ(Segments(index, "dbc"), (std::vector<uint64_t>{1, 2}));
  // A token never indexed is a segment of its own, and so is what follows it.
  EXPECT_EQ(Segments(index, "ab?ab"), (std::vector<uint64_t>{2, 1, 2}));
  EXPECT_DOUBLE_EQ(CoverScore(index, std::vector<uint32_t>{0, 1, 2, 3}), 0.5);
  EXPECT_DOUBLE_EQ(CoverScore(index, std::vector<uint32_t>{}), 0.0);
}

// Many random sequences over four letters (states split into clones again and again, and the
// root's transitions are redirected to them): a string is one walk from the root exactly when
// it occurs inside one of the sequences, checked for every string of up to five letters.
TEST(CoverIndexTest, WalksFromTheRootMatchSubstringsOfRandomCorpus) {
  std::mt19937_64 rng(7);
  std::vector<std::string> corpus(40);
  for (std::string& s : corpus) {
    s.resize(3 + rng() % 12);
    for (char& c : s) c = static_cast<char>('a' + rng() % (1 + rng() % 4));
  }
  const CoverIndex index = IndexOf(corpus);
  size_t found = 0, dead = 0;
  std::vector<std::string> level = {""};
  for (int len = 1; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const std::string& p : level) {
      for (char c = 'a'; c <= 'e'; ++c) next.push_back(p + c);
    }
    for (const std::string& q : next) {
      bool occurs = false;
      for (const std::string& s : corpus) occurs = occurs || s.find(q) != std::string::npos;
      CoverIndex::State st = CoverIndex::kRoot;
      for (char c : q) st = index.Step(st, static_cast<uint32_t>(c - 'a'));
      EXPECT_EQ(st != CoverIndex::kDead, occurs) << q;
      ++(occurs ? found : dead);
    }
    level = std::move(next);
  }
  EXPECT_GT(found, 100u);
  EXPECT_GT(dead, 100u);
}

TEST(CoverIndexTest, RepeatedPrefixesShareStates) {
  // The second and third sequences repeat a prefix of the first: a generalised automaton adds
  // no state for them and still finds every run.
  const CoverIndex once = IndexOf({"abcabd"});
  const CoverIndex again = IndexOf({"abcabd", "abc", "ab"});
  EXPECT_EQ(once.states(), again.states());
  EXPECT_EQ(Segments(again, "cabd"), (std::vector<uint64_t>{4}));
}

class CoverModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    traces_ = new std::vector<TrainingTrace>(Corpus(60, "", 1));
    auto m = CoverModel::Train(*traces_, CoverModelOptions{});
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    model_ = m->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete traces_;
  }
  static const CoverModel& model() { return *model_; }
  static std::vector<TrainingTrace>* traces_;
  static CoverModel* model_;
};
std::vector<TrainingTrace>* CoverModelTest::traces_ = nullptr;
CoverModel* CoverModelTest::model_ = nullptr;

TEST_F(CoverModelTest, TrainingTracesAreOneSegmentAndAttacksScoreHigher) {
  EXPECT_EQ(model().family(), "syscall-cover");
  EXPECT_DOUBLE_EQ(model().RawScore(Arch::kI386, (*traces_)[4].syscalls),
                   1.0 / static_cast<double>((*traces_)[4].syscalls.size()));
  std::mt19937 rng(7);
  const core::Verdict normal = Score(model(), NormalTrace(rng));
  const core::Verdict attack = Score(model(), AttackTrace());
  EXPECT_GT(attack.score, normal.score);
  EXPECT_TRUE(attack.anomalous);
  EXPECT_FALSE(normal.anomalous);
  // The shortest segments (one call each, weight 1) are where setuid broke in: the explanation
  // names them, each with the call that could not continue it.
  ASSERT_EQ(attack.explanation.size(), 3u);
  int naming_setuid = 0;
  for (const core::Evidence& ev : attack.explanation) {
    EXPECT_EQ(ev.weight, 1.0) << ev.what;
    naming_setuid += ev.what.find("setuid") != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(naming_setuid, 2);
  EXPECT_EQ(attack.model_name, "syscall-cover");
}

TEST_F(CoverModelTest, CalibrationReachesItsTargetOnHeldNormalTraces) {
  const HeldOutCalibration& c = model().calibration();
  EXPECT_EQ(c.traces, traces_->size());
  EXPECT_LE(c.achieved_fpr, 0.05 + 1e-9);
  // Fresh normal traces of the same grammar: about the target rate, never far above.
  const std::vector<TrainingTrace> held = Corpus(400, "", 42);
  size_t over = 0;
  for (const TrainingTrace& t : held) over += Score(model(), t.syscalls).anomalous ? 1 : 0;
  EXPECT_LE(static_cast<double>(over) / static_cast<double>(held.size()), 0.10);
}

TEST_F(CoverModelTest, StreamMatchesWholeTraceScoreAndEventsAreCounted) {
  const std::vector<int32_t> t = AttackTrace();
  auto stream = StreamOfEvents(model(), t);
  EXPECT_EQ(stream->observed(), t.size());
  EXPECT_DOUBLE_EQ(stream->Current().score, model().ScoreFromRaw(model().RawScore(Arch::kI386, t)));
  EXPECT_EQ(model().NewStream("")->Current().score, 0.0);
  // A call number no table names is a segment of its own, named in the explanation.
  const core::Verdict v = Score(model(), {kOpen, kRead, 9999, kClose});
  EXPECT_EQ(v.events, 4u);
  EXPECT_TRUE(v.anomalous);
}

TEST_F(CoverModelTest, ScoringARequestEqualsAStream) {
  ExpectRequestMatchesStream(model(), AttackTrace());
  ExpectRequestMatchesStream(model(), (*traces_)[3].syscalls);
  ExpectRequestMatchesStream(model(), {kOpen, kRead, 9999, kClose});
}

TEST_F(CoverModelTest, SaveLoadGivesIdenticalScores) {
  const ModelFile f = model().ToFile({{"training", {{"digest", "sha256:x"}}}});
  EXPECT_EQ(f.header["family"], "syscall-cover");
  // The calibration record names the calibration set (every training trace) and the rate reached.
  const auto& cal = f.header["calibration"];
  EXPECT_EQ(cal["method"], "cross-fitted");
  EXPECT_EQ(cal["unit"], "segments/call");
  EXPECT_EQ(cal["samples"], traces_->size());
  EXPECT_EQ(cal["digest"].get<std::string>().rfind("sha256:", 0), 0u);
  EXPECT_DOUBLE_EQ(cal["achieved_fpr"].get<double>(), model().calibration().achieved_fpr);
  EXPECT_TRUE(f.header.contains("drift_reference"));
  auto decoded = DecodeModelFile(EncodeModelFile(f), "mem");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  auto loaded = LoadModelFromFile(*decoded, "mem");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  std::mt19937 rng(3);
  for (const auto& t : {AttackTrace(), (*traces_)[5].syscalls, NormalTrace(rng)}) {
    const core::Verdict a = Score(model(), t), b = Score(**loaded, t);
    EXPECT_EQ(a.score, b.score);
    EXPECT_EQ(a.anomalous, b.anomalous);
    ASSERT_EQ(a.explanation.size(), b.explanation.size());
    for (size_t i = 0; i < a.explanation.size(); ++i) {
      EXPECT_EQ(a.explanation[i].what, b.explanation[i].what);
    }
  }
  auto typed = CoverModel::FromFile(*decoded, "mem");
  ASSERT_TRUE(typed.has_value());
  EXPECT_EQ((*typed)->ToFile({}).payload, f.payload);
  EXPECT_EQ((*typed)->index().states(), model().index().states());
  ASSERT_TRUE((*typed)->training_record().calibration.has_value());
  EXPECT_EQ((*typed)->training_record().calibration->digest,
            model().training_record().calibration->digest);
}

TEST_F(CoverModelTest, CorruptPayloadsAreRefused) {
  const ModelFile good = model().ToFile({});
  ExpectCutsAndTrailingBytesRefused(good, &CoverModel::FromFile, 32);
  // A training token outside the vocabulary (the last one).
  ModelFile token = good;
  token.payload[token.payload.size() - 2] = static_cast<char>(0x00);
  token.payload[token.payload.size() - 1] = static_cast<char>(0x7f);
  auto m = CoverModel::FromFile(token, "tok.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("outside the vocabulary"), std::string::npos)
      << m.error().message();
  // Explanation sizes out of range (explain_top after the f64 target).
  ModelFile top = good;
  top.payload[8 + 3] = static_cast<char>(0x7f);
  EXPECT_FALSE(CoverModel::FromFile(top, "f").has_value());
  ModelFile other = good;
  other.header["family"] = "syscall-ngram";
  auto wrong = CoverModel::FromFile(other, "f");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), StatusCode::kInvalidArgument);
}

TEST(CoverModelOptionsTest, BadOptionsAreRefused) {
  const std::vector<TrainingTrace> traces = Corpus(10, "", 1);
  CoverModelOptions o;
  o.folds = 1;
  EXPECT_FALSE(CoverModel::Train(traces, o).has_value());
  o = CoverModelOptions{};
  o.target_fpr = 1.5;
  EXPECT_FALSE(CoverModel::Train(traces, o).has_value());
  o = CoverModelOptions{};
  EXPECT_FALSE(CoverModel::Train(std::span(traces).first(3), o).has_value());
}

}  // namespace
}  // namespace vigil::model
