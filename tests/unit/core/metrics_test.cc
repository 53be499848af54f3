#include "core/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace vigil::core {
namespace {

using ::testing::HasSubstr;

TEST(HistogramTest, QuantilesOfUniformValuesInUniformBuckets) {
  Histogram h({1, 2, 3, 4, 5});
  // 0.05, 0.10, ..., 5.00: twenty observations per bucket.
  for (int i = 1; i <= 100; ++i) h.Observe(i * 0.05);
  EXPECT_DOUBLE_EQ(h.Quantile(0.5), 2.5);
  EXPECT_DOUBLE_EQ(h.Quantile(0.95), 4.75);
  EXPECT_DOUBLE_EQ(h.Quantile(0.99), 4.95);
  EXPECT_DOUBLE_EQ(h.Quantile(1.0), 5.0);
  EXPECT_DOUBLE_EQ(h.Quantile(0.1), 0.5);  // first bucket starts at 0
}

TEST(HistogramTest, BoundaryValuesLandInTheirLeBucket) {
  Histogram h({1, 2});
  h.Observe(1.0);  // le="1"
  h.Observe(2.0);  // le="2"
  h.Observe(2.5);  // +Inf
  h.Observe(-3);   // le="1"
  const Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.counts, (std::vector<uint64_t>{2, 1, 1}));
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 2.5);
}

TEST(HistogramTest, RankInInfBucketYieldsLargestBound) {
  Histogram h({0.1, 1});
  for (int i = 0; i < 10; ++i) h.Observe(100);
  EXPECT_DOUBLE_EQ(h.Quantile(0.5), 1.0);
}

TEST(HistogramTest, EmptyOrBadQuantileIsNaN) {
  Histogram h(DefaultLatencyBuckets());
  EXPECT_TRUE(std::isnan(h.Quantile(0.5)));
  h.Observe(0.001);
  EXPECT_TRUE(std::isnan(h.Quantile(-0.1)));
  EXPECT_TRUE(std::isnan(h.Quantile(1.1)));
  EXPECT_TRUE(std::isnan(h.Quantile(std::nan(""))));
  h.Observe(std::nan(""));  // ignored
  EXPECT_EQ(h.Read().count, 1u);
}

TEST(HistogramTest, DefaultBucketsSpan1usTo10s) {
  const std::vector<double>& b = DefaultLatencyBuckets();
  ASSERT_EQ(b.size(), 43u);
  EXPECT_DOUBLE_EQ(b.front(), 1e-6);
  EXPECT_DOUBLE_EQ(b[1], 1.47e-6);
  EXPECT_DOUBLE_EQ(b[6], 1e-5);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_GT(b[i], b[i - 1]);
}

// Latencies uniform on 1..1000 ms: P50 = 0.5 s, P95 = 0.95 s, P99 = 0.99 s. With six buckets
// per decade the interpolated estimate is within a few percent for a flat density.
TEST(HistogramTest, DefaultBucketsEstimateUniformLatencies) {
  Histogram h(DefaultLatencyBuckets());
  for (int ms = 1; ms <= 1000; ++ms) h.ObserveNanos(int64_t{ms} * 1'000'000);
  EXPECT_NEAR(h.Quantile(0.50), 0.50, 0.50 * 0.05);
  EXPECT_NEAR(h.Quantile(0.95), 0.95, 0.95 * 0.05);
  EXPECT_NEAR(h.Quantile(0.99), 0.99, 0.99 * 0.05);
  EXPECT_NEAR(h.Read().sum, 500.5, 1e-6);
}

// Exponentially distributed latencies (mean 1 ms), sampled deterministically through the
// inverse CDF: the q-quantile is -ln(1-q) ms. A skewed density costs accuracy inside a bucket,
// so allow 15 %.
TEST(HistogramTest, DefaultBucketsEstimateExponentialLatencies) {
  Histogram h(DefaultLatencyBuckets());
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const double u = (i + 0.5) / kN;
    h.Observe(-std::log(1 - u) * 1e-3);
  }
  for (double q : {0.5, 0.95, 0.99}) {
    const double truth = -std::log(1 - q) * 1e-3;
    EXPECT_NEAR(h.Quantile(q), truth, truth * 0.15) << "q=" << q;
  }
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h(DefaultLatencyBuckets());
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50000; ++i) {
        h.Observe(1e-3);
        c.Inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Read().count, 200000u);
  EXPECT_EQ(c.Value(), 200000u);
  EXPECT_NEAR(h.Read().sum, 200.0, 1e-6);
}

TEST(RegistryTest, SameNameAndLabelsReturnTheSameMetric) {
  Registry r;
  Result<Counter*> a = r.GetCounter("vigil_events_total", "Events.", {{"a", "1"}, {"b", "2"}});
  Result<Counter*> b = r.GetCounter("vigil_events_total", "Other help.", {{"b", "2"}, {"a", "1"}});
  Result<Counter*> c = r.GetCounter("vigil_events_total", "Events.", {{"a", "1"}, {"b", "3"}});
  ASSERT_TRUE(a.has_value() && b.has_value() && c.has_value());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  Result<Histogram*> h1 = r.GetHistogram("vigil_lat_seconds", "Latency.");
  Result<Histogram*> h2 = r.GetHistogram("vigil_lat_seconds", "Latency.", {}, {1, 2});
  ASSERT_TRUE(h1.has_value() && h2.has_value());
  EXPECT_EQ(*h1, *h2);
  EXPECT_EQ((*h2)->bounds().size(), 43u);
}

TEST(RegistryTest, ConflictsAreErrors) {
  Registry r;
  ASSERT_TRUE(r.GetCounter("x_total", "x", {{"a", "1"}}).has_value());
  Result<Gauge*> as_gauge = r.GetGauge("x_total", "x", {{"a", "1"}});
  ASSERT_FALSE(as_gauge.has_value());
  EXPECT_EQ(as_gauge.error().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(as_gauge.error().message(), HasSubstr("already registered as a counter"));
  Result<Counter*> other_labels = r.GetCounter("x_total", "x", {{"b", "1"}});
  ASSERT_FALSE(other_labels.has_value());
  EXPECT_THAT(other_labels.error().message(), HasSubstr("with labels {a}"));
}

TEST(RegistryTest, InvalidNamesAreRejected) {
  Registry r;
  for (std::string_view bad : {"", "1abc", "a-b", "a b", "é"}) {
    Result<Counter*> c = r.GetCounter(bad, "h");
    ASSERT_FALSE(c.has_value()) << bad;
    EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(r.GetCounter("a:b_c9", "h").has_value());
  EXPECT_FALSE(r.GetCounter("ok", "h", {{"__reserved", "x"}}).has_value());
  EXPECT_FALSE(r.GetCounter("ok", "h", {{"a:b", "x"}}).has_value());
  EXPECT_FALSE(r.GetCounter("ok", "h", {{"a", "x"}, {"a", "y"}}).has_value());
  EXPECT_FALSE(r.GetHistogram("h", "h", {{"le", "1"}}).has_value());
  EXPECT_FALSE(r.GetHistogram("h2", "h", {}, {2, 1}).has_value());
  EXPECT_FALSE(r.GetHistogram("h3", "h", {}, {}).has_value());
  EXPECT_TRUE(IsValidMetricName("vigil_queue_depth"));
  EXPECT_FALSE(IsValidLabelName("le-x"));
}

TEST(RegistryTest, ExpositionTextGolden) {
  Registry r;
  (*r.GetCounter("vigil_events_total", "Events seen.", {{"source", "replay"}}))->Inc(3);
  (*r.GetGauge("vigil_queue_depth", "Queue depth.\nSecond line \\ backslash"))->Set(2.5);
  Histogram* h = *r.GetHistogram("vigil_latency_seconds", "Latency.", {}, {0.125, 1});
  h->Observe(0.0625);
  h->Observe(0.5);
  h->Observe(4);
  Result<Registry::CallbackHandle> cb = r.AddCallbackGauge(
      "vigil_cb", "From a callback.", {{"path", "a\"b\\c\nd"}}, [] { return 7.0; });
  ASSERT_TRUE(cb.has_value());
  EXPECT_EQ(r.ExpositionText(),
            "# HELP vigil_cb From a callback.\n"
            "# TYPE vigil_cb gauge\n"
            "vigil_cb{path=\"a\\\"b\\\\c\\nd\"} 7\n"
            "# HELP vigil_events_total Events seen.\n"
            "# TYPE vigil_events_total counter\n"
            "vigil_events_total{source=\"replay\"} 3\n"
            "# HELP vigil_latency_seconds Latency.\n"
            "# TYPE vigil_latency_seconds histogram\n"
            "vigil_latency_seconds_bucket{le=\"0.125\"} 1\n"
            "vigil_latency_seconds_bucket{le=\"1\"} 2\n"
            "vigil_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "vigil_latency_seconds_sum 4.5625\n"
            "vigil_latency_seconds_count 3\n"
            "# HELP vigil_queue_depth Queue depth.\\nSecond line \\\\ backslash\n"
            "# TYPE vigil_queue_depth gauge\n"
            "vigil_queue_depth 2.5\n");
}

TEST(RegistryTest, LabelledHistogramAndDefaultBucketsRender) {
  Registry r;
  Histogram* h = *r.GetHistogram("vigil_stage_seconds", "Stage latency.", {{"stage", "model"}});
  h->Observe(2e-6);
  const std::string text = r.ExpositionText();
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_bucket{stage=\"model\",le=\"1e-06\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_bucket{stage=\"model\",le=\"1.47e-06\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_bucket{stage=\"model\",le=\"2.15e-06\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_bucket{stage=\"model\",le=\"10\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_bucket{stage=\"model\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_sum{stage=\"model\"} 2e-06\n"));
  EXPECT_THAT(text, HasSubstr("vigil_stage_seconds_count{stage=\"model\"} 1\n"));
}

TEST(RegistryTest, SpecialGaugeValues) {
  Registry r;
  Gauge* g = *r.GetGauge("g", "g");
  g->Set(-INFINITY);
  EXPECT_THAT(r.ExpositionText(), HasSubstr("\ng -Inf\n"));
  g->Set(NAN);
  EXPECT_THAT(r.ExpositionText(), HasSubstr("\ng NaN\n"));
  g->Set(1e21);
  EXPECT_THAT(r.ExpositionText(), HasSubstr("\ng 1e+21\n"));
}

TEST(RegistryTest, CallbackSeriesLiveAsLongAsTheirHandle) {
  Registry r;
  double value = 1;
  {
    Result<Registry::CallbackHandle> h = r.AddCallbackCounter(
        "vigil_drops_total", "Drops.", {{"cause", "full"}}, [&value] { return value; });
    ASSERT_TRUE(h.has_value());
    value = 41;
    EXPECT_THAT(r.ExpositionText(), HasSubstr("vigil_drops_total{cause=\"full\"} 41\n"));
    // A second registration of the same series is refused, and so is an owned metric there.
    EXPECT_EQ(
        r.AddCallbackCounter("vigil_drops_total", "Drops.", {{"cause", "full"}}, [] { return 0.0; })
            .error()
            .code(),
        StatusCode::kAlreadyExists);
    EXPECT_FALSE(r.GetCounter("vigil_drops_total", "Drops.", {{"cause", "full"}}).has_value());
    // Moving the handle keeps the registration.
    Registry::CallbackHandle moved = std::move(h).value();
    EXPECT_THAT(r.ExpositionText(), HasSubstr("vigil_drops_total{cause=\"full\"} 41\n"));
  }
  EXPECT_EQ(r.ExpositionText(), "");
  // The name is free again, even for another type.
  EXPECT_TRUE(r.GetGauge("vigil_drops_total", "Now a gauge.", {}).has_value());
}

TEST(RegistryTest, ThrowingCallbackReadsNaN) {
  Registry r;
  auto h = r.AddCallbackGauge("boom", "b", {}, []() -> double { throw std::runtime_error("x"); });
  ASSERT_TRUE(h.has_value());
  EXPECT_THAT(r.ExpositionText(), HasSubstr("\nboom NaN\n"));
}

TEST(RegistryTest, GlobalRegistryIsOneInstance) { EXPECT_EQ(&Registry::Get(), &Registry::Get()); }

}  // namespace
}  // namespace vigil::core
