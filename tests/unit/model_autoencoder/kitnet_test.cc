#include "model/kitnet.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "model/autoencoder.h"
#include "model/evaluation.h"
#include "model/kitnet_model.h"

namespace vigil::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr size_t kDims = 8;

// Two latent signals, each driving four features: 0..3 follow a, 4..7 follow b (shuffled
// positions would work too; plain order keeps the expected groups readable).
std::vector<std::vector<float>> Normal(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  std::vector<std::vector<float>> rows(n, std::vector<float>(kDims));
  for (auto& r : rows) {
    const float a = u(rng), b = u(rng);
    for (size_t i = 0; i < 4; ++i) r[i] = a * (1.0f + 0.5f * static_cast<float>(i)) + noise(rng);
    for (size_t i = 4; i < 8; ++i) r[i] = 1.0f - b + 0.3f * static_cast<float>(i) + noise(rng);
  }
  return rows;
}

// Normal rows with feature `broken` decoupled from its signal: each value alone stays inside
// the training range, only the correlation breaks.
std::vector<std::vector<float>> Anomalies(size_t n, uint64_t seed, size_t broken) {
  std::vector<std::vector<float>> rows = Normal(n, seed);
  std::vector<std::vector<float>> other = Normal(n, seed + 7);
  for (size_t i = 0; i < n; ++i) rows[i][broken] = other[(i + n / 2) % n][broken];
  return rows;
}

KitNetOptions SmallOptions() {
  KitNetOptions o;
  o.max_group_size = 4;
  o.epochs = 30;
  o.learning_rate = 0.5;
  o.seed = 3;
  for (size_t i = 0; i < kDims; ++i) o.feature_names.push_back("f" + std::to_string(i));
  return o;
}

KitNet TrainOrDie(const std::vector<std::vector<float>>& rows, const KitNetOptions& o) {
  auto k = KitNet::Train(rows, o);
  EXPECT_TRUE(k.has_value()) << k.error().ToString();
  return std::move(k).value();
}

const KitNet& Trained() {
  static const KitNet net = TrainOrDie(Normal(600, 1), SmallOptions());
  return net;
}

TEST(KitNetClusterTest, SplitsTheDendrogramIntoGroupsOfAtMostM) {
  // Features {0,1,2} are close to each other, {3,4} to each other, 5 is far from all.
  Eigen::MatrixXd d = Eigen::MatrixXd::Constant(6, 6, 0.9);
  for (int i = 0; i < 6; ++i) d(i, i) = 0;
  auto link = [&](int a, int b, double v) { d(a, b) = d(b, a) = v; };
  link(0, 1, 0.1);
  link(1, 2, 0.2);
  link(3, 4, 0.15);
  EXPECT_THAT(ClusterFeatures(d, 3),
              UnorderedElementsAre(ElementsAre(0, 1, 2), ElementsAre(3, 4), ElementsAre(5)));
  // m = 2 splits {0,1,2} at its last merge.
  EXPECT_THAT(ClusterFeatures(d, 2), UnorderedElementsAre(ElementsAre(0, 1), ElementsAre(2),
                                                          ElementsAre(3, 4), ElementsAre(5)));
  EXPECT_THAT(ClusterFeatures(d, 6), ElementsAre(ElementsAre(0, 1, 2, 3, 4, 5)));
}

TEST(KitNetTest, MapperGroupsCorrelatedFeatures) {
  EXPECT_THAT(Trained().groups(),
              UnorderedElementsAre(ElementsAre(0, 1, 2, 3), ElementsAre(4, 5, 6, 7)));
}

TEST(KitNetTest, OnlineTrainerWalksThroughItsGracePeriods) {
  KitNetOptions o = SmallOptions();
  o.fm_grace = 100;
  o.ad_grace = 50;
  auto t = KitNetTrainer::Create(kDims, o);
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  const auto rows = Normal(200, 2);
  EXPECT_FALSE(t->Finish().has_value());  // mapping not complete
  for (size_t i = 0; i < 99; ++i) ASSERT_TRUE(t->Observe(rows[i]).ok());
  EXPECT_EQ(t->phase(), KitNetTrainer::Phase::kMapping);
  ASSERT_TRUE(t->Observe(rows[99]).ok());
  EXPECT_EQ(t->phase(), KitNetTrainer::Phase::kTraining);
  for (size_t i = 100; i < 200; ++i) ASSERT_TRUE(t->Observe(rows[i]).ok());
  EXPECT_EQ(t->phase(), KitNetTrainer::Phase::kDone);
  EXPECT_EQ(t->mapped(), 100u);
  EXPECT_EQ(t->trained(), 50u);
  EXPECT_FALSE(t->Observe(std::vector<float>(3, 0.0f)).ok());
  EXPECT_FALSE(t->Observe(std::vector<float>(kDims, NAN)).ok());
}

TEST(KitNetTest, BrokenCorrelationsScoreAboveNormalRows) {
  const KitNet& net = Trained();
  std::vector<Scored> s;
  for (const auto& r : Normal(300, 11)) s.push_back({net.Score(r), false});
  for (const auto& r : Anomalies(300, 12, 2)) s.push_back({net.Score(r), true});
  EXPECT_GT(RocAuc(s), 0.9);
}

TEST(KitNetTest, CalibrationReachesItsTargetOnFreshNormalRows) {
  const KitNet& net = Trained();
  EXPECT_EQ(net.calibration().rows, 120u);  // 20 % of 600 held out
  EXPECT_LE(net.calibration().achieved_fpr, 0.05);
  size_t over = 0;
  const auto fresh = Normal(2000, 21);
  for (const auto& r : fresh) over += net.IsAnomalous(net.Score(r)) ? 1 : 0;
  const double fpr = static_cast<double>(over) / static_cast<double>(fresh.size());
  EXPECT_GT(fpr, 0.01);
  EXPECT_LT(fpr, 0.10);
  EXPECT_NEAR(net.UnitScore(net.calibration().threshold), 0.5, 1e-12);
}

TEST(KitNetTest, ExplanationNamesTheBrokenFeature) {
  const KitNet& net = Trained();
  KitNet::Workspace ws;
  size_t hits = 0;
  const auto rows = Anomalies(50, 31, 6);
  for (const auto& r : rows) {
    if (net.Score(r, ws) < net.calibration().threshold) continue;
    const auto top = net.Explain(r, 3, ws);
    ASSERT_FALSE(top.empty());
    double sum = 0;
    for (const FeatureWeight& w : top) sum += w.weight;
    EXPECT_LE(sum, 1.0 + 1e-9);
    hits += top[0].feature == 6 ? 1 : 0;
  }
  EXPECT_GE(hits, 10u);
}

TEST(KitNetTest, SameSeedSameNetwork) {
  const KitNet again = TrainOrDie(Normal(600, 1), SmallOptions());
  EXPECT_EQ(EncodeModelFile(again.ToFile({})), EncodeModelFile(Trained().ToFile({})));
}

TEST(KitNetTest, SaveLoadGivesIdenticalScoresInBothPrecisions) {
  const KitNet& net = Trained();
  const std::string bytes = EncodeModelFile(net.ToFile({{"training", "synthetic"}}));
  auto file = DecodeModelFile(bytes, "k.vmdl");
  ASSERT_TRUE(file.has_value());
  auto loaded = KitNet::FromFile(*file, "k.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  KitNet quant = net;
  quant.QuantizeInt8();
  auto loaded8 = KitNet::FromFile(*file, "k.vmdl", KitNetPrecision::kInt8);
  ASSERT_TRUE(loaded8.has_value());
  EXPECT_EQ(loaded8->precision(), KitNetPrecision::kInt8);
  EXPECT_EQ(loaded->groups(), net.groups());
  EXPECT_EQ(loaded->feature_names(), net.feature_names());
  EXPECT_EQ(loaded->calibration().threshold, net.calibration().threshold);
  std::vector<Scored> f, q;
  for (const auto& r : Anomalies(200, 41, 1)) {
    EXPECT_EQ(loaded->Score(r), net.Score(r));
    EXPECT_EQ(loaded8->Score(r), quant.Score(r));
    f.push_back({net.Score(r), true});
    q.push_back({quant.Score(r), true});
  }
  for (const auto& r : Normal(200, 42)) {
    f.push_back({net.Score(r), false});
    q.push_back({quant.Score(r), false});
  }
  // int8 scores rank rows almost as float does.
  EXPECT_NEAR(RocAuc(q), RocAuc(f), 0.03);
}

TEST(KitNetTest, RefusesBadOptionsAndRows) {
  KitNetOptions o = SmallOptions();
  o.max_group_size = 0;
  EXPECT_FALSE(KitNet::Train(Normal(50, 1), o).has_value());
  o = SmallOptions();
  o.hidden_ratio = 1.5;
  EXPECT_FALSE(KitNet::Train(Normal(50, 1), o).has_value());
  o = SmallOptions();
  o.feature_names.pop_back();
  auto r = KitNet::Train(Normal(50, 1), o);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("7 feature names for 8 features"));
  auto rows = Normal(50, 1);
  rows[7][3] = INFINITY;
  r = KitNet::Train(rows, SmallOptions());
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("training row 7"));
}

// ---- Corrupt and mismatched files -----------------------------------------------------------

ModelFile SmallFile() {
  KitNetOptions o = SmallOptions();
  o.epochs = 2;
  return TrainOrDie(Normal(60, 5), o).ToFile({});
}

TEST(KitNetFileTest, RefusesAnotherFamily) {
  ModelFile f = SmallFile();
  f.header["family"] = "iforest";
  auto r = KitNet::FromFile(f, "m.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("m.vmdl"));
}

TEST(KitNetFileTest, RefusesEveryTruncationAndTrailingBytes) {
  const ModelFile good = SmallFile();
  // The int8 load reads the same file and refuses the same faults.
  for (KitNetPrecision p : {KitNetPrecision::kFloat, KitNetPrecision::kInt8}) {
    for (size_t len = 0; len < good.payload.size(); ++len) {
      ModelFile f = good;
      f.payload.resize(len);
      auto r = KitNet::FromFile(f, "m.vmdl", p);
      ASSERT_FALSE(r.has_value()) << "cut at " << len;
      EXPECT_EQ(r.error().code(), core::StatusCode::kDataLoss);
      EXPECT_THAT(r.error().message(), HasSubstr("m.vmdl: payload: "));
    }
    ModelFile f = good;
    f.payload.push_back('\0');
    auto r = KitNet::FromFile(f, "m.vmdl", p);
    ASSERT_FALSE(r.has_value());
    EXPECT_THAT(r.error().message(), HasSubstr("1 trailing bytes"));
  }
}

TEST(KitNetFileTest, EveryByteFlipIsRefusedOrScoresFinitely) {
  const ModelFile good = SmallFile();
  const auto rows = Normal(5, 9);
  for (size_t i = 0; i < good.payload.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      ModelFile f = good;
      f.payload[i] = static_cast<char>(f.payload[i] ^ mask);
      auto r = KitNet::FromFile(f, "m.vmdl", KitNetPrecision::kInt8);
      if (!r.has_value()) {
        EXPECT_FALSE(r.error().message().empty());
        continue;
      }
      for (const auto& row : rows) ASSERT_TRUE(std::isfinite(r->Score(row))) << "byte " << i;
    }
  }
}

// Offset of the group count in SmallFile's payload: 72 fixed bytes, then 8 names of 2+2 bytes.
constexpr size_t kGroupsAt = 4 + 4 + 8 * 5 + 8 + 8 + 4 + 4 + 8 * 4;

TEST(KitNetFileTest, RefusesGroupsThatDoNotPartitionTheFeatures) {
  const ModelFile good = SmallFile();
  uint32_t groups = 0, first_size = 0, first_index = 0;
  std::memcpy(&groups, good.payload.data() + kGroupsAt, 4);
  std::memcpy(&first_size, good.payload.data() + kGroupsAt + 4, 4);
  std::memcpy(&first_index, good.payload.data() + kGroupsAt + 8, 4);
  ASSERT_EQ(groups, 2u);
  ASSERT_EQ(first_size, 4u);
  auto with_index = [&](uint32_t v) {
    ModelFile f = good;
    std::memcpy(f.payload.data() + kGroupsAt + 8, &v, 4);
    auto r = KitNet::FromFile(f, "m.vmdl");
    EXPECT_FALSE(r.has_value());
    return r.has_value() ? std::string() : r.error().message();
  };
  EXPECT_THAT(with_index(99), HasSubstr("feature index 99 is not below dims 8"));
  // The first group's first feature replaced by one of the other group's.
  const uint32_t other = first_index == 0 ? 4 : 0;
  EXPECT_THAT(with_index(other), HasSubstr("do not ascend"));
}

TEST(KitNetFileTest, RefusesANonFiniteWeight) {
  ModelFile f = SmallFile();
  // The last four bytes are the output layer's last visible bias.
  const uint32_t nan = std::bit_cast<uint32_t>(std::numeric_limits<float>::quiet_NaN());
  std::memcpy(f.payload.data() + f.payload.size() - 4, &nan, 4);
  auto r = KitNet::FromFile(f, "m.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("output layer: a bias is not finite or too large"));
}

// ---- The stream adapter ---------------------------------------------------------------------

std::vector<TrainingTrace> Traces(size_t n, uint64_t seed) {
  // i386: 3 read, 4 write, 5 open, 6 close, 192 mmap2.
  std::mt19937_64 rng(seed);
  std::vector<TrainingTrace> out;
  for (size_t i = 0; i < n; ++i) {
    TrainingTrace t;
    t.arch = core::Arch::kI386;
    const size_t loops = 3 + rng() % 10;
    for (size_t k = 0; k < loops; ++k) {
      t.syscalls.insert(t.syscalls.end(), {5, 3, 3, 4, 6});
      if (rng() % 3 == 0) t.syscalls.push_back(192);
    }
    out.push_back(std::move(t));
  }
  return out;
}

TEST(KitNetModelTest, StreamScoresAsTheWholeTraceAndExplainsWithRealNames) {
  KitNetModelOptions o;
  o.net.epochs = 5;
  o.net.max_group_size = 3;
  o.bigrams = 4;
  auto m = KitNetModel::Train(Traces(80, 1), o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  const auto names = (*m)->net().feature_names();
  ASSERT_EQ(names.size(), (*m)->space().dims());
  EXPECT_THAT(names, ::testing::Contains("read>read"));
  EXPECT_EQ((*m)->family(), "kitnet");

  const std::vector<int32_t> odd = {5, 3, 4, 4, 4, 4, 4, 11, 11, 6};
  auto stream = (*m)->NewStream("demo");
  for (size_t i = 0; i < odd.size(); i += 3) {
    stream->ObserveSyscalls(core::Arch::kI386,
                            std::span(odd).subspan(i, std::min<size_t>(3, odd.size() - i)));
  }
  const core::Verdict v = stream->Current();
  const double raw = (*m)->ScoreTrace(core::Arch::kI386, odd);
  EXPECT_DOUBLE_EQ(v.score, (*m)->net().UnitScore(raw));
  EXPECT_EQ(v.events, odd.size());
  EXPECT_EQ(v.subject, "demo");
  ASSERT_FALSE(v.explanation.empty());
  for (const auto& e : v.explanation) EXPECT_THAT(names, ::testing::Contains(e.what));

  const std::string bytes = EncodeModelFile((*m)->ToFile({}));
  auto file = DecodeModelFile(bytes, "a.vmdl");
  ASSERT_TRUE(file.has_value());
  auto back = KitNetModel::FromFile(*file, "a.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ((*back)->ScoreTrace(core::Arch::kI386, odd), raw);
  auto stream2 = (*back)->NewStream("demo");
  stream2->ObserveSyscalls(core::Arch::kI386, odd);
  EXPECT_EQ(stream2->Current().score, v.score);
  EXPECT_EQ(stream->Current().explanation.size(), stream2->Current().explanation.size());
}

TEST(KitNetModelTest, RefusesFeatureNamesThatAreNotASyscallSpace) {
  KitNetOptions o = SmallOptions();
  o.epochs = 1;
  const ModelFile f = TrainOrDie(Normal(40, 5), o).ToFile({});  // names f0..f7, no "<other>"
  auto r = KitNetModel::FromFile(f, "t.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), core::StatusCode::kDataLoss);
  EXPECT_THAT(r.error().message(), HasSubstr("<other>"));
}

// The int8 products through the AVX2 kernel and the portable one: the same int32 sums, so the
// same scores bit for bit, at sizes below, at and across the 16- and 32-byte steps of the
// AVX2 loop (padding included). And both stay close to the float scores.
TEST(AutoencoderInt8Test, KernelsAgreeBitForBitAndStayNearFloat) {
  const Int8Kernel initial = ActiveInt8Kernel();
  const bool avx2 = SelectInt8Kernel(Int8Kernel::kAvx2);
  if (!avx2) GTEST_LOG_(INFO) << "no AVX2 on this CPU: only the portable kernel is checked";
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (size_t n : {1u, 7u, 16u, 17u, 32u, 33u, 50u, 64u, 100u}) {
    const size_t h = (n * 3 + 3) / 4;
    Autoencoder a(n, h, rng);
    AutoencoderScratch s;
    std::vector<std::vector<float>> rows(60, std::vector<float>(n));
    for (auto& r : rows) {
      for (float& v : r) v = g(rng);
    }
    for (int epoch = 0; epoch < 5; ++epoch) {
      for (const auto& r : rows) (void)a.Train(r, 0.1f, s);
    }
    Autoencoder q = a;
    q.Quantize();
    for (const auto& r : rows) {
      const double f = a.Score(r, s);
      ASSERT_TRUE(SelectInt8Kernel(Int8Kernel::kScalar));
      std::vector<float> err_portable(n), err_avx2(n);
      const double portable = q.Score(r, s, err_portable);
      EXPECT_NEAR(portable, f, 0.05 * f + 0.01) << "visible " << n;
      if (avx2) {
        ASSERT_TRUE(SelectInt8Kernel(Int8Kernel::kAvx2));
        const double fast = q.Score(r, s, err_avx2);
        ASSERT_EQ(std::bit_cast<uint64_t>(fast), std::bit_cast<uint64_t>(portable))
            << "visible " << n;
        EXPECT_EQ(err_avx2, err_portable);
      }
    }
  }
  ASSERT_TRUE(SelectInt8Kernel(initial));
}


// The packed ensemble scores every member exactly as the member's own int8 Score does (the
// one Explain uses), with either kernel, for members of 1..64 visible units reading scattered
// entries of one row.
TEST(Int8GroupPackTest, MatchesEachMembersInt8ScoreBitForBit) {
  const Int8Kernel initial = ActiveInt8Kernel();
  std::mt19937_64 rng(11);
  std::normal_distribution<float> g(0.3f, 1.0f);
  const std::vector<size_t> sizes = {1, 2, 3, 7, 10, 16, 17, 33, 64};
  size_t dims = 0;
  for (size_t n : sizes) dims += n;
  std::vector<uint32_t> perm(dims);
  for (uint32_t i = 0; i < dims; ++i) perm[i] = (i * 37 + 5) % static_cast<uint32_t>(dims);
  ASSERT_EQ(std::gcd(size_t{37}, dims), 1u);  // so perm is a permutation
  std::vector<Autoencoder> members;
  std::vector<std::vector<uint32_t>> inputs;
  AutoencoderScratch s;
  size_t next = 0;
  for (size_t n : sizes) {
    members.emplace_back(n, (n * 3 + 3) / 4, rng);
    inputs.emplace_back(perm.begin() + static_cast<ptrdiff_t>(next),
                        perm.begin() + static_cast<ptrdiff_t>(next + n));
    next += n;
    std::vector<float> x(n);
    for (int step = 0; step < 200; ++step) {
      for (float& v : x) v = g(rng);
      (void)members.back().Train(x, 0.1f, s);
    }
    members.back().Quantize();
  }
  const Int8GroupPack pack = Int8GroupPack::Build(members, inputs);
  ASSERT_FALSE(pack.empty());
  EXPECT_EQ(pack.row_size(), dims);
  std::vector<float> row(dims), packed(members.size()), x;
  for (int r = 0; r < 50; ++r) {
    // Some rows far outside the training range (clamped to [-4, 5] after normalisation).
    for (float& v : row) v = g(rng) * (r % 5 == 0 ? 40.0f : 1.0f);
    for (Int8Kernel k : {Int8Kernel::kScalar, Int8Kernel::kAvx2}) {
      if (!SelectInt8Kernel(k)) continue;
      pack.Rmses(row, packed);
      for (size_t m = 0; m < members.size(); ++m) {
        x.clear();
        for (uint32_t i : inputs[m]) x.push_back(row[i]);
        const auto own = static_cast<float>(members[m].Score(x, s));
        ASSERT_EQ(std::bit_cast<uint32_t>(packed[m]), std::bit_cast<uint32_t>(own))
            << "member " << m << " (" << sizes[m] << " inputs), row " << r;
      }
    }
  }
  ASSERT_TRUE(SelectInt8Kernel(initial));
}

TEST(Int8GroupPackTest, RefusesMembersItCannotPack) {
  std::mt19937_64 rng(1);
  std::vector<Autoencoder> members;
  members.emplace_back(3, 2, rng);
  const std::vector<std::vector<uint32_t>> inputs = {{0, 1, 2}};
  EXPECT_TRUE(Int8GroupPack::Build(members, inputs).empty());  // not quantized
  members[0].Quantize();
  EXPECT_FALSE(Int8GroupPack::Build(members, inputs).empty());
  const std::vector<std::vector<uint32_t>> short_inputs = {{0, 1}};
  EXPECT_TRUE(Int8GroupPack::Build(members, short_inputs).empty());
  members.emplace_back(Int8GroupPack::kMaxVisible + 1, 2, rng);
  members[1].Quantize();
  std::vector<std::vector<uint32_t>> two = inputs;
  two.emplace_back(Int8GroupPack::kMaxVisible + 1, 3);
  EXPECT_TRUE(Int8GroupPack::Build(members, two).empty());
}

// A whole network in int8: the AVX2 and portable kernels give the same scores and explanations
// bit for bit; every score stays within 10 % + 0.02 of float's on a fixed set of normal and
// anomalous rows, and the AUC within 0.02.
TEST(KitNetInt8Test, KernelsAgreeBitForBitAndScoresStayNearFloat) {
  const Int8Kernel initial = ActiveInt8Kernel();
  const KitNet& net = Trained();
  KitNet quant = net;
  quant.QuantizeInt8();
  std::vector<std::vector<float>> rows = Normal(200, 42);
  std::vector<bool> attack(rows.size(), false);
  for (size_t broken : {1u, 6u}) {
    for (auto& r : Anomalies(100, 43 + broken, broken)) {
      rows.push_back(std::move(r));
      attack.push_back(true);
    }
  }
  std::vector<Scored> f, q;
  KitNet::Workspace ws;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_TRUE(SelectInt8Kernel(Int8Kernel::kScalar));
    const double portable = quant.Score(rows[i], ws);
    const auto why_portable = quant.Explain(rows[i], 3, ws);
    if (SelectInt8Kernel(Int8Kernel::kAvx2)) {
      ASSERT_EQ(std::bit_cast<uint64_t>(quant.Score(rows[i], ws)),
                std::bit_cast<uint64_t>(portable))
          << "row " << i;
      const auto why_avx2 = quant.Explain(rows[i], 3, ws);
      ASSERT_EQ(why_avx2.size(), why_portable.size());
      for (size_t k = 0; k < why_avx2.size(); ++k) {
        EXPECT_EQ(why_avx2[k].feature, why_portable[k].feature);
        EXPECT_EQ(why_avx2[k].weight, why_portable[k].weight);
      }
    }
    const double exact = net.Score(rows[i], ws);
    EXPECT_NEAR(portable, exact, 0.1 * exact + 0.02) << "row " << i;
    f.push_back({exact, attack[i]});
    q.push_back({portable, attack[i]});
  }
  EXPECT_NEAR(RocAuc(q), RocAuc(f), 0.02);
  EXPECT_GT(RocAuc(q), 0.9);
  ASSERT_TRUE(SelectInt8Kernel(initial));
}

// A short row reads as zeros past its end in int8 as in float.
TEST(KitNetInt8Test, ShortRowsReadAsZeros) {
  KitNet quant = Trained();
  quant.QuantizeInt8();
  std::vector<float> row = Normal(1, 3)[0];
  row.resize(3);
  std::vector<float> padded = row;
  padded.resize(kDims, 0.0f);
  EXPECT_EQ(quant.Score(row), quant.Score(padded));
  EXPECT_TRUE(std::isfinite(quant.Score(std::vector<float>{})));
}

}  // namespace
}  // namespace vigil::model
