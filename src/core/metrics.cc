#include "core/metrics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace vigil::core {

struct Registry::Series {
  std::string label_text;  // `a="x",b="y"` (sorted, escaped), empty without labels
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> callback;  // set for callback series (counter or gauge)
  uint64_t callback_id = 0;
};

struct Registry::Family {
  Type type = Type::kCounter;
  std::string help;
  std::vector<std::string> label_names;                                // sorted
  std::map<std::string, std::unique_ptr<Series>, std::less<>> series;  // by label_text
};

namespace {

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

bool ValidBounds(const std::vector<double>& bounds) {
  if (bounds.empty()) return false;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) return false;
    if (i > 0 && !(bounds[i] > bounds[i - 1])) return false;
  }
  return true;
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == ':' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!(IsAlpha(name[i]) || (i > 0 && IsDigit(name[i])))) return false;
  }
  return true;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const std::vector<double>& DefaultLatencyBuckets() {
  // Parsed from decimal text so that each bound is the double nearest to a short decimal and
  // renders as such ("1.47e-06", not "1.4699999999999998e-06").
  static const std::vector<double>* const kBuckets = [] {
    auto* b = new std::vector<double>;
    for (int exp = -6; exp <= 0; ++exp) {
      for (const char* mantissa : {"1", "1.47", "2.15", "3.16", "4.64", "6.81"}) {
        b->push_back(std::strtod(fmt::format("{}e{}", mantissa, exp).c_str(), nullptr));
      }
    }
    b->push_back(10.0);
    return b;
  }();
  return *kBuckets;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(ValidBounds(bounds) ? std::move(bounds) : std::vector<double>{1.0}),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  const auto i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                     bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

double Histogram::Quantile(double q) const { return Quantile(Read(), q); }

double Histogram::Quantile(const Snapshot& s, double q) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (!(q >= 0 && q <= 1) || s.count == 0 || s.bounds.empty()) return kNaN;
  // Mirrors bucketQuantile() in Prometheus' promql/quantile.go, on cumulative counts.
  const double rank = q * static_cast<double>(s.count);
  double cumulative_before = 0;
  for (size_t b = 0; b < s.bounds.size(); ++b) {
    const double cumulative = cumulative_before + static_cast<double>(s.counts[b]);
    if (cumulative >= rank) {
      if (b == 0 && s.bounds[0] <= 0) return s.bounds[0];
      const double start = b == 0 ? 0 : s.bounds[b - 1];
      const double in_bucket = cumulative - cumulative_before;
      if (in_bucket == 0) return start;  // q == 0 below the first observation
      return start + (s.bounds[b] - start) * ((rank - cumulative_before) / in_bucket);
    }
    cumulative_before = cumulative;
  }
  return s.bounds.back();  // the rank lies in the +Inf bucket
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& Registry::Get() {
  static Registry* const kRegistry = new Registry;
  return *kRegistry;
}

namespace {

std::string_view TypeNameOf(int type) {
  switch (type) {
    case 0:
      return "counter";
    case 1:
      return "gauge";
    default:
      return "histogram";
  }
}

}  // namespace

Result<Registry::Series*> Registry::FindOrAdd(std::string_view name, std::string_view help,
                                              Type type, const Labels& labels, bool* created) {
  *created = false;
  if (!IsValidMetricName(name)) {
    return InvalidArgument(fmt::format("metric name \"{}\" does not match [a-zA-Z_:][a-zA-Z0-9_:]*",
                                       EscapeLabelValue(name)));
  }
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> names;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string& label = sorted[i].first;
    if (!IsValidLabelName(label)) {
      return InvalidArgument(
          fmt::format("metric {}: label name \"{}\" is not valid", name, EscapeLabelValue(label)));
    }
    if (type == Type::kHistogram && label == "le") {
      return InvalidArgument(
          fmt::format("metric {}: label \"le\" is reserved in histograms", name));
    }
    if (i > 0 && label == sorted[i - 1].first) {
      return InvalidArgument(fmt::format("metric {}: label \"{}\" given twice", name, label));
    }
    names.push_back(label);
  }
  std::string label_text;
  for (const auto& [k, v] : sorted) {
    if (!label_text.empty()) label_text += ',';
    label_text += fmt::format("{}=\"{}\"", k, EscapeLabelValue(v));
  }

  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    family->label_names = names;
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.type != type) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("metric {} is already registered as a {}", name,
                              TypeNameOf(static_cast<int>(family.type))));
  }
  if (family.label_names != names) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("metric {} is already registered with labels {{{}}}", name,
                              fmt::join(family.label_names, ",")));
  }
  auto series_it = family.series.find(label_text);
  if (series_it == family.series.end()) {
    auto series = std::make_unique<Series>();
    series->label_text = label_text;
    series_it = family.series.emplace(std::move(label_text), std::move(series)).first;
    *created = true;
  }
  return series_it->second.get();
}

Result<Counter*> Registry::GetCounter(std::string_view name, std::string_view help,
                                      const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  VIGIL_ASSIGN_OR_RETURN(Series * series, FindOrAdd(name, help, Type::kCounter, labels, &created));
  if (created) series->counter = std::make_unique<Counter>();
  if (!series->counter) {
    return Status(
        StatusCode::kAlreadyExists,
        fmt::format("metric {}{{{}}} is registered as a callback", name, series->label_text));
  }
  return series->counter.get();
}

Result<Gauge*> Registry::GetGauge(std::string_view name, std::string_view help,
                                  const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  VIGIL_ASSIGN_OR_RETURN(Series * series, FindOrAdd(name, help, Type::kGauge, labels, &created));
  if (created) series->gauge = std::make_unique<Gauge>();
  if (!series->gauge) {
    return Status(
        StatusCode::kAlreadyExists,
        fmt::format("metric {}{{{}}} is registered as a callback", name, series->label_text));
  }
  return series->gauge.get();
}

Result<Histogram*> Registry::GetHistogram(std::string_view name, std::string_view help,
                                          const Labels& labels, const std::vector<double>& bounds) {
  if (!ValidBounds(bounds)) {
    return InvalidArgument(fmt::format(
        "histogram {}: bucket bounds must be finite, strictly increasing and non-empty", name));
  }
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  VIGIL_ASSIGN_OR_RETURN(Series * series,
                         FindOrAdd(name, help, Type::kHistogram, labels, &created));
  if (created) series->histogram = std::make_unique<Histogram>(bounds);
  return series->histogram.get();
}

Result<Registry::CallbackHandle> Registry::AddCallback(std::string_view name, std::string_view help,
                                                       Type type, const Labels& labels,
                                                       std::function<double()> read) {
  if (!read) return InvalidArgument(fmt::format("metric {}: empty callback", name));
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  VIGIL_ASSIGN_OR_RETURN(Series * series, FindOrAdd(name, help, type, labels, &created));
  if (!created) {
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("metric {}{{{}}} is already registered", name, series->label_text));
  }
  series->callback = std::move(read);
  series->callback_id = next_callback_id_++;
  return CallbackHandle(this, series->callback_id);
}

Result<Registry::CallbackHandle> Registry::AddCallbackCounter(std::string_view name,
                                                              std::string_view help,
                                                              const Labels& labels,
                                                              std::function<double()> read) {
  return AddCallback(name, help, Type::kCounter, labels, std::move(read));
}

Result<Registry::CallbackHandle> Registry::AddCallbackGauge(std::string_view name,
                                                            std::string_view help,
                                                            const Labels& labels,
                                                            std::function<double()> read) {
  return AddCallback(name, help, Type::kGauge, labels, std::move(read));
}

void Registry::RemoveCallback(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto family = families_.begin(); family != families_.end(); ++family) {
    auto& series = family->second->series;
    for (auto s = series.begin(); s != series.end(); ++s) {
      if (s->second->callback_id != id) continue;
      series.erase(s);
      if (series.empty()) families_.erase(family);
      return;
    }
  }
}

Registry::CallbackHandle::CallbackHandle(CallbackHandle&& other) noexcept
    : registry_(std::exchange(other.registry_, nullptr)), id_(std::exchange(other.id_, 0)) {}

Registry::CallbackHandle& Registry::CallbackHandle::operator=(CallbackHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

Registry::CallbackHandle::~CallbackHandle() { Reset(); }

void Registry::CallbackHandle::Reset() {
  if (registry_ != nullptr) registry_->RemoveCallback(id_);
  registry_ = nullptr;
  id_ = 0;
}

std::string Registry::ExpositionText() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    if (family->series.empty()) continue;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, EscapeHelp(family->help), name,
                       TypeNameOf(static_cast<int>(family->type)));
    for (const auto& [label_text, series] : family->series) {
      const std::string braced = label_text.empty() ? "" : fmt::format("{{{}}}", label_text);
      if (series->callback) {
        double v = std::numeric_limits<double>::quiet_NaN();
        try {
          v = series->callback();
        } catch (...) {  // a throwing callback must not take the scrape down; it reads NaN
        }
        out += fmt::format("{}{} {}\n", name, braced, FormatDouble(v));
      } else if (series->counter) {
        out += fmt::format("{}{} {}\n", name, braced, series->counter->Value());
      } else if (series->gauge) {
        out += fmt::format("{}{} {}\n", name, braced, FormatDouble(series->gauge->Value()));
      } else if (series->histogram) {
        const Histogram::Snapshot s = series->histogram->Read();
        const std::string prefix = label_text.empty() ? "" : label_text + ",";
        uint64_t cumulative = 0;
        for (size_t i = 0; i < s.bounds.size(); ++i) {
          cumulative += s.counts[i];
          out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, prefix,
                             FormatDouble(s.bounds[i]), cumulative);
        }
        out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, prefix, s.count);
        out += fmt::format("{}_sum{} {}\n", name, braced, FormatDouble(s.sum));
        out += fmt::format("{}_count{} {}\n", name, braced, s.count);
      }
    }
  }
  return out;
}

}  // namespace vigil::core
