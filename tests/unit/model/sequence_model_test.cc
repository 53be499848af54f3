#include "model/sequence_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "model/internal/bytes.h"
#include "synthetic_traces.h"

namespace vigil::model {
namespace {

using core::Arch;
using core::StatusCode;

using namespace synthetic;  // NOLINT(google-build-using-namespace): shared fixtures

core::Verdict Score(const Model& m, std::string_view subject, const std::vector<int32_t>& s) {
  auto stream = m.NewStream(subject);
  stream->ObserveSyscalls(Arch::kI386, s);
  return stream->Current();
}

class SequenceModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    traces_ = new std::vector<TrainingTrace>(Corpus(40, "", 1));
    auto m = SequenceModel::Train(*traces_, SequenceModelOptions{});
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    model_ = m->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete traces_;
  }
  static std::vector<TrainingTrace>* traces_;
  static SequenceModel* model_;
};
std::vector<TrainingTrace>* SequenceModelTest::traces_ = nullptr;
SequenceModel* SequenceModelTest::model_ = nullptr;

TEST_F(SequenceModelTest, UnseenPatternIsAnomalousAndExplained) {
  const core::Verdict normal = Score(*model_, "", (*traces_)[5].syscalls);
  const core::Verdict attack = Score(*model_, "", AttackTrace());
  EXPECT_GT(attack.score, normal.score);
  EXPECT_FALSE(normal.anomalous) << normal.score;
  EXPECT_TRUE(attack.anomalous) << attack.score;
  EXPECT_GE(attack.score, 0.5);
  EXPECT_LE(attack.score, 1.0);
  ASSERT_FALSE(attack.explanation.empty());
  EXPECT_LE(attack.explanation.size(), 3u);  // explain_top
  EXPECT_NE(attack.explanation[0].what.find("setuid"), std::string::npos)
      << attack.explanation[0].what;
  for (size_t i = 1; i < attack.explanation.size(); ++i) {
    EXPECT_GE(attack.explanation[i - 1].weight, attack.explanation[i].weight);
    EXPECT_NE(attack.explanation[i - 1].what, attack.explanation[i].what);
  }
  EXPECT_EQ(attack.subject, kGlobalSubject);
  EXPECT_EQ(attack.model_name, "syscall-ngram");
  EXPECT_EQ(attack.events, AttackTrace().size());
}

TEST_F(SequenceModelTest, StreamScoreMatchesRawScore) {
  const auto& s = (*traces_)[3].syscalls;
  const core::Verdict v = Score(*model_, "", s);
  const double raw = model_->RawScore("", Arch::kI386, s);
  EXPECT_NEAR(v.score, model_->ScoreFromRaw("", raw), 1e-9);
  EXPECT_EQ(v.anomalous, raw >= model_->CalibrationFor("").threshold);
}

TEST_F(SequenceModelTest, ObserveEventsEqualsObserveSyscalls) {
  const std::vector<int32_t> s = AttackTrace();
  auto stream = model_->NewStream("");
  core::Event e;
  for (int32_t nr : s) {
    e.kind = core::EventKind::kSyscall;
    e.syscall = {Arch::kI386, nr};
    stream->Observe(e);
    e.kind = core::EventKind::kFileOpen;  // ignored by this family
    stream->Observe(e);
  }
  const core::Verdict a = stream->Current();
  const core::Verdict b = Score(*model_, "", s);
  EXPECT_EQ(stream->observed(), s.size());
  EXPECT_DOUBLE_EQ(a.score, b.score);
  ASSERT_EQ(a.explanation.size(), b.explanation.size());
  for (size_t i = 0; i < a.explanation.size(); ++i) {
    EXPECT_EQ(a.explanation[i].what, b.explanation[i].what);
  }
}

// ObserveSyscalls scores its calls a run at a time (NgramLm::SurprisalRun); fed in slices that
// start, end and straddle the runs' boundaries, the stream's verdict is the one-event-at-a-time
// verdict to the last bit, explanation included.
TEST_F(SequenceModelTest, SlicedObserveSyscallsEqualsOneEventAtATime) {
  std::vector<int32_t> s;
  for (size_t i = 0; i < 4; ++i) {
    const auto& t = (*traces_)[i].syscalls;
    s.insert(s.end(), t.begin(), t.end());
    const auto a = AttackTrace();
    s.insert(s.end(), a.begin(), a.end());
  }
  ASSERT_GT(s.size(), 300u);
  const core::Verdict want = StreamOfEvents(*model_, s)->Current();
  for (size_t first : {size_t{1}, size_t{3}, size_t{63}, size_t{64}, size_t{65}, size_t{200}}) {
    auto stream = model_->NewStream("");
    const std::span<const int32_t> all(s);
    stream->ObserveSyscalls(Arch::kI386, all.first(first));
    stream->ObserveSyscalls(Arch::kI386, all.subspan(first, 2));
    stream->ObserveSyscalls(Arch::kI386, all.subspan(first + 2));
    const core::Verdict got = stream->Current();
    EXPECT_EQ(got.score, want.score) << "first slice " << first;
    EXPECT_EQ(got.events, want.events);
    ASSERT_EQ(got.explanation.size(), want.explanation.size());
    for (size_t i = 0; i < want.explanation.size(); ++i) {
      EXPECT_EQ(got.explanation[i].what, want.explanation[i].what);
      EXPECT_EQ(got.explanation[i].weight, want.explanation[i].weight);
    }
  }
}

TEST_F(SequenceModelTest, EmptyStreamScoresZero) {
  const core::Verdict v = model_->NewStream("")->Current();
  EXPECT_EQ(v.score, 0.0);
  EXPECT_FALSE(v.anomalous);
  EXPECT_EQ(v.events, 0u);
  EXPECT_TRUE(v.explanation.empty());
}

TEST_F(SequenceModelTest, TokensAreSharedAcrossArchitectures) {
  EXPECT_NE(model_->TokenOf(Arch::kI386, kRead), 0);
  EXPECT_EQ(model_->TokenOf(Arch::kX86_64, 0), model_->TokenOf(Arch::kI386, kRead));  // read
  EXPECT_EQ(model_->TokenName(model_->TokenOf(Arch::kI386, kOpen)), "open");
  EXPECT_EQ(model_->TokenOf(Arch::kUnknown, kRead), 0);
  EXPECT_EQ(model_->TokenOf(Arch::kI386, -1), 0);
  EXPECT_EQ(model_->TokenOf(Arch::kI386, 100000), 0);
  EXPECT_EQ(model_->TokenOf(Arch::kI386, 1), 0);  // exit: not in the training vocabulary
  EXPECT_EQ(model_->TokenName(0), "<unknown>");
}

TEST_F(SequenceModelTest, FileRoundTripGivesIdenticalVerdicts) {
  const ModelFile file = model_->ToFile({{"training", "synthetic"}});
  EXPECT_EQ(file.header["family"], kSequenceFamily);
  EXPECT_EQ(file.header["training"], "synthetic");
  EXPECT_EQ(file.header["params"]["order"], 6);
  auto decoded = DecodeModelFile(EncodeModelFile(file), "rt.vmdl");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  auto loaded = SequenceModel::FromFile(*decoded, "rt.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  const SequenceModel& m2 = **loaded;
  EXPECT_EQ(m2.vocab_size(), model_->vocab_size());
  EXPECT_EQ(m2.subjects(), model_->subjects());
  std::vector<std::vector<int32_t>> streams = {
      AttackTrace(), (*traces_)[0].syscalls, (*traces_)[7].syscalls, {kClose, kClose, 1, 2}};
  for (const auto& s : streams) {
    const core::Verdict a = Score(*model_, "", s);
    const core::Verdict b = Score(m2, "", s);
    EXPECT_EQ(a.score, b.score);
    EXPECT_EQ(a.anomalous, b.anomalous);
    EXPECT_EQ(a.subject, b.subject);
    ASSERT_EQ(a.explanation.size(), b.explanation.size());
    for (size_t i = 0; i < a.explanation.size(); ++i) {
      EXPECT_EQ(a.explanation[i].what, b.explanation[i].what);
      EXPECT_EQ(a.explanation[i].weight, b.explanation[i].weight);
    }
  }
  EXPECT_EQ(m2.ToFile({}).payload, file.payload);  // the payload is canonical
}

TEST_F(SequenceModelTest, ScoringARequestEqualsAStream) {
  ExpectRequestMatchesStream(*model_, AttackTrace());
  ExpectRequestMatchesStream(*model_, (*traces_)[3].syscalls);
  ExpectRequestMatchesStream(*model_, {kClose, kClose, 1, 2});
}

TEST(SequenceModelSubjectsTest, PerProgramModelWhenEnoughTraces) {
  std::vector<TrainingTrace> traces = Corpus(25, "sshd", 2);
  for (auto& t : traces) {  // sshd writes much more than the others
    for (size_t i = 0; i < t.syscalls.size(); i += 3) t.syscalls[i] = kWrite;
  }
  for (auto& t : Corpus(5, "cron", 3)) traces.push_back(std::move(t));
  for (auto& t : Corpus(10, "", 4)) traces.push_back(std::move(t));
  SequenceModelOptions o;
  o.min_subject_traces = 20;
  auto m = SequenceModel::Train(traces, o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ((*m)->subjects(), (std::vector<std::string>{"*", "sshd"}));
  EXPECT_EQ((*m)->NewStream("sshd")->Current().subject, "sshd");
  EXPECT_EQ((*m)->NewStream("cron")->Current().subject, "*");
  EXPECT_EQ((*m)->NewStream("")->Current().subject, "*");
  EXPECT_EQ((*m)->CalibrationFor("sshd").traces, 25u);
  EXPECT_EQ((*m)->CalibrationFor("cron").traces, 40u);
  const auto& sshd_trace = traces[3].syscalls;
  EXPECT_LT((*m)->RawScore("sshd", Arch::kI386, sshd_trace),
            (*m)->RawScore("*", Arch::kI386, sshd_trace));
}

TEST(SequenceModelTrainTest, RejectsBadOptions) {
  const std::vector<TrainingTrace> traces = Corpus(10, "", 5);
  struct Case {
    SequenceModelOptions o;
    const char* want;
  };
  std::vector<Case> cases(6);
  cases[0].o.order = 0, cases[0].want = "order 0";
  cases[1].o.order = kMaxOrder + 1, cases[1].want = "order 7";
  cases[2].o.target_fpr = 0.0, cases[2].want = "target_fpr";
  cases[3].o.target_fpr = 1.0, cases[3].want = "target_fpr";
  cases[4].o.folds = 1, cases[4].want = "folds";
  cases[5].o.folds = 11, cases[5].want = "need at least 11";
  for (const Case& c : cases) {
    auto m = SequenceModel::Train(traces, c.o);
    ASSERT_FALSE(m.has_value()) << c.want;
    EXPECT_EQ(m.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.error().message().find(c.want), std::string::npos) << m.error().ToString();
  }
}

// Payloads built by hand, field by field, as docs/model-file-format.md describes them.
struct NgramEntry {
  uint64_t key;
  uint32_t count;
};

uint64_t Key(std::initializer_list<Token> tokens) {
  const std::vector<Token> t(tokens);
  return NgramLm::Key(t.data(), static_cast<int>(t.size()));
}

struct PayloadSpec {
  uint32_t order = 2;
  double target_fpr = 0.05;
  uint32_t explain_top = 3;
  std::vector<std::string> vocab = {"read", "open"};
  std::string subject = "*";
  double scale = 1.0;
  // Ascending keys: the order tag sorts first, then the oldest token in the low bits.
  std::vector<NgramEntry> ngrams = {
      {Key({1}), 3}, {Key({2}), 2}, {Key({2, 1}), 1}, {Key({1, 2}), 2}};
  uint64_t declared_ngrams = UINT64_MAX;  // UINT64_MAX: the real number
  std::string trailing;
};

std::string Payload(const PayloadSpec& p) {
  internal::ByteWriter w;
  w.U32(p.order);
  w.F64(p.target_fpr);
  w.U32(p.explain_top);
  w.U32(static_cast<uint32_t>(p.vocab.size()));
  for (const auto& v : p.vocab) w.Str16(v);
  w.U32(1);  // subjects
  w.Str16(p.subject);
  w.F64(2.0);  // threshold
  w.F64(p.scale);
  w.F64(1.5);   // median
  w.F64(0.05);  // achieved_fpr
  w.U64(10);    // traces
  w.U64(p.declared_ngrams == UINT64_MAX ? p.ngrams.size() : p.declared_ngrams);
  for (const auto& n : p.ngrams) {
    w.U64(n.key);
    w.U32(n.count);
  }
  w.Bytes(p.trailing);
  return w.str();
}

ModelFile FileWith(std::string payload) {
  ModelFile f;
  f.header = {{"family", "syscall-ngram"}, {"name", "hand"}, {"version", "7"}};
  f.payload = std::move(payload);
  return f;
}

TEST(SequenceModelFromFileTest, AcceptsAHandBuiltPayload) {
  auto m = SequenceModel::FromFile(FileWith(Payload({})), "hand.vmdl");
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ((*m)->name(), "hand");
  EXPECT_EQ((*m)->version(), "7");
  EXPECT_EQ((*m)->vocab_size(), 3u);
  const core::Verdict v = Score(**m, "x", {kRead, kOpen, kRead, kWrite});
  EXPECT_EQ(v.events, 4u);
  EXPECT_TRUE(std::isfinite(v.score));
}

TEST(SequenceModelFromFileTest, RefusesMalformedPayloads) {
  struct Case {
    const char* what = "";
    PayloadSpec spec;
    const char* want = "";
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, const char* want,
                 const std::function<void(PayloadSpec&)>& edit) {
    Case c;
    c.what = what;
    c.want = want;
    edit(c.spec);
    cases.push_back(std::move(c));
  };
  add("keys out of order", "out of order",
      [](PayloadSpec& p) { std::swap(p.ngrams[0], p.ngrams[2]); });
  add("duplicate key", "out of order", [](PayloadSpec& p) { p.ngrams[1] = p.ngrams[0]; });
  add("token outside vocabulary", "outside the vocabulary", [](PayloadSpec& p) {
    p.ngrams.push_back({Key({2, 3}), 1});
  });
  add("count runs past end", "runs past the end", [](PayloadSpec& p) { p.declared_ngrams = 1000; });
  add("order too large", "order 7 outside", [](PayloadSpec& p) { p.order = 7; });
  add("order zero", "order 0 outside", [](PayloadSpec& p) { p.order = 0; });
  add("n-gram above model order", "malformed", [](PayloadSpec& p) {
    p.ngrams.push_back({Key({1, 1, 1}), 1});
  });
  add("zero count", "malformed", [](PayloadSpec& p) { p.ngrams[0].count = 0; });
  add("stray bits", "stray bits", [](PayloadSpec& p) { p.ngrams[1].key |= uint64_t{1} << 30; });
  add("counts overflow", "sum past", [](PayloadSpec& p) {
    p.ngrams[0].count = UINT32_MAX;
    p.ngrams[1].count = UINT32_MAX;
  });
  add("no global subject", "no global", [](PayloadSpec& p) { p.subject = "sshd"; });
  add("zero scale", "calibration", [](PayloadSpec& p) { p.scale = 0.0; });
  add("NaN scale", "calibration", [](PayloadSpec& p) { p.scale = std::nan(""); });
  add("trailing bytes", "1 trailing bytes", [](PayloadSpec& p) { p.trailing = "x"; });
  add("explain_top too large", "explain_top", [](PayloadSpec& p) { p.explain_top = 65; });
  add("vocabulary too large", "vocabulary of", [](PayloadSpec& p) { p.vocab.resize(1024); });
  for (const Case& c : cases) {
    auto m = SequenceModel::FromFile(FileWith(Payload(c.spec)), "hand.vmdl");
    ASSERT_FALSE(m.has_value()) << c.what;
    EXPECT_EQ(m.error().code(), StatusCode::kDataLoss) << c.what;
    EXPECT_EQ(m.error().message().rfind("hand.vmdl: payload: ", 0), 0u) << m.error().ToString();
    EXPECT_NE(m.error().message().find(c.want), std::string::npos)
        << c.what << ": " << m.error().ToString();
  }
}

TEST(SequenceModelFromFileTest, EveryTruncationIsRefused) {
  const std::string good = Payload({});
  for (size_t len = 0; len < good.size(); ++len) {
    auto m = SequenceModel::FromFile(FileWith(good.substr(0, len)), "cut.vmdl");
    ASSERT_FALSE(m.has_value()) << "length " << len;
    EXPECT_EQ(m.error().code(), StatusCode::kDataLoss);
  }
}

TEST(SequenceModelFromFileTest, DuplicateSubjectIsRefused) {
  // Two "*" subjects: splice the subject block in twice and fix the subject count.
  const std::string one = Payload({});
  const size_t params = 4 + 8 + 4 + 4 + (2 + 4) + (2 + 4);  // up to and including the vocab
  std::string two = one.substr(0, params);
  internal::ByteWriter count;
  count.U32(2);
  two += count.str() + one.substr(params + 4) + one.substr(params + 4);
  auto m = SequenceModel::FromFile(FileWith(two), "dup.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("duplicate subject"), std::string::npos)
      << m.error().ToString();
}

TEST(SequenceModelFromFileTest, OtherFamilyIsInvalidArgumentAndNeverThrows) {
  for (const nlohmann::json& header :
       {nlohmann::json{{"family", "other"}}, nlohmann::json{{"family", 3}},
        nlohmann::json{{"family", "syscall-ngram"}, {"name", 5}}, nlohmann::json::array(),
        nlohmann::json()}) {
    ModelFile f = FileWith(Payload({}));
    f.header = header;
    auto m = SequenceModel::FromFile(f, "fam.vmdl");
    if (header.is_object() && header.value("family", nlohmann::json()) == "syscall-ngram") {
      // A non-string name is not this reader's business (DecodeModelFile refuses it).
      EXPECT_TRUE(m.has_value()) << header.dump();
      continue;
    }
    ASSERT_FALSE(m.has_value()) << header.dump();
    EXPECT_EQ(m.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.error().message().find("is not \"syscall-ngram\""), std::string::npos);
  }
}

}  // namespace
}  // namespace vigil::model
