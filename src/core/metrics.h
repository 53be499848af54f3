#pragma once

// A small Prometheus-style metrics registry: counters, gauges and latency histograms, rendered
// in the Prometheus text exposition format 0.0.4 (served by MetricsServer, http_server.h).
//
// Hot paths only touch atomics: Counter::Inc(), Gauge::Set()/Add(), Histogram::Observe() build
// no strings, take no locks and never allocate. Registration (Get*/Add*) and rendering take the
// registry's mutex; do them at start-up, not per event.
//
// Metrics returned by a Registry are owned by it and live as long as it does; the process-wide
// Registry::Get() lives until exit, so pointers into it never dangle.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace vigil::core {

// Label name/value pairs, e.g. {{"cause", "queue_full"}}. Order does not matter: a series is
// identified by its set of labels.
using Labels = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Monotonic counter. Thread-safe; Inc() is one relaxed atomic add.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Thread-safe; lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Upper bounds (le) of the default latency buckets, in seconds: 1µs to 10s, six per decade
// (1, 1.47, 2.15, 3.16, 4.64, 6.81 × 10^k), 43 finite bounds plus +Inf.
const std::vector<double>& DefaultLatencyBuckets();

// A histogram with fixed buckets. Observe() is lock-free: a binary search over the bounds and
// two relaxed atomic updates. Values are in the histogram's unit (seconds for latencies, by
// Prometheus convention). A value v lands in the first bucket whose bound b has v <= b.
class Histogram {
 public:
  // `bounds` must be finite, strictly increasing and non-empty (the Registry checks; here a bad
  // list is a bug and is replaced by {1.0}). +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is ignored.
  void Observe(double value);
  void ObserveNanos(int64_t nanos) { Observe(static_cast<double>(nanos) * 1e-9); }

  struct Snapshot {
    std::vector<double> bounds;    // finite upper bounds
    std::vector<uint64_t> counts;  // per bucket (not cumulative); bounds.size() + 1 entries
    uint64_t count = 0;            // sum of counts
    double sum = 0;
  };
  // A copy of the counts; `count` always equals the sum of the bucket counts read, even while
  // other threads observe.
  Snapshot Read() const;

  // The q-quantile (0 <= q <= 1) estimated the way Prometheus' histogram_quantile() does it:
  // find the bucket holding rank q*count and interpolate linearly inside it (the first bucket
  // starts at 0; a rank in the +Inf bucket yields the largest finite bound). NaN when empty or
  // when q is outside [0, 1].
  double Quantile(double q) const;
  static double Quantile(const Snapshot& s, double q);

  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// A set of metric families, rendered together. Thread-safe.
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not start
// with "__" ("le" is reserved in histograms). Within one family every series has the same label
// names. Asking again for the same name and labels returns the same metric; asking for a name
// already registered with another type or other label names fails (kAlreadyExists). Invalid
// names are kInvalidArgument. The help text of the first registration is kept.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry (never destroyed).
  static Registry& Get();

  Result<Counter*> GetCounter(std::string_view name, std::string_view help,
                              const Labels& labels = {});
  Result<Gauge*> GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // `bounds` as for Histogram (kInvalidArgument otherwise); a repeated registration returns the
  // existing series and ignores `bounds`.
  Result<Histogram*> GetHistogram(std::string_view name, std::string_view help,
                                  const Labels& labels = {},
                                  const std::vector<double>& bounds = DefaultLatencyBuckets());

  // Callback metrics: `read` is called at scrape time, under the registry's mutex, so it must
  // be quick and must not call into this registry. They let other components expose their own
  // atomics without depending on Counter objects. The series exists until the returned handle
  // is destroyed or Reset(); after that `read` is never called again. The handle must not
  // outlive the registry. Registering a name+labels that already exists fails (kAlreadyExists).
  class CallbackHandle {
   public:
    CallbackHandle() = default;
    CallbackHandle(CallbackHandle&& other) noexcept;
    CallbackHandle& operator=(CallbackHandle&& other) noexcept;
    ~CallbackHandle();
    // Unregisters now (idempotent).
    void Reset();

   private:
    friend class Registry;
    CallbackHandle(Registry* registry, uint64_t id) : registry_(registry), id_(id) {}
    Registry* registry_ = nullptr;
    uint64_t id_ = 0;
  };
  Result<CallbackHandle> AddCallbackCounter(std::string_view name, std::string_view help,
                                            const Labels& labels, std::function<double()> read);
  Result<CallbackHandle> AddCallbackGauge(std::string_view name, std::string_view help,
                                          const Labels& labels, std::function<double()> read);

  // The whole registry in the Prometheus text format 0.0.4: families sorted by name, series by
  // labels, each family with # HELP and # TYPE lines; histograms as cumulative
  // _bucket{le="..."} lines ending with le="+Inf", then _sum and _count.
  std::string ExpositionText() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series;
  struct Family;

  // Finds or creates the series; *created says which. The caller holds mu_.
  Result<Series*> FindOrAdd(std::string_view name, std::string_view help, Type type,
                            const Labels& labels, bool* created);
  Result<CallbackHandle> AddCallback(std::string_view name, std::string_view help, Type type,
                                     const Labels& labels, std::function<double()> read);
  void RemoveCallback(uint64_t id);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  uint64_t next_callback_id_ = 1;
};

// Whether `name` is a valid Prometheus metric name / label name.
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);
// Escapes a label value for the text format (\\, \", \n).
std::string EscapeLabelValue(std::string_view value);

}  // namespace vigil::core
