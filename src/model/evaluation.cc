#include "model/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace vigil::model {
namespace {
std::vector<Scored> SortedDescending(std::span<const Scored> examples) {
  std::vector<Scored> v(examples.begin(), examples.end());
  std::sort(v.begin(), v.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  return v;
}
}  // namespace

double RocAuc(std::span<const Scored> examples) {
  // Mann-Whitney U with average ranks for ties.
  std::vector<Scored> v(examples.begin(), examples.end());
  std::sort(v.begin(), v.end(), [](const Scored& a, const Scored& b) { return a.score < b.score; });
  double pos = 0, neg = 0, rank_sum = 0;
  size_t i = 0;
  while (i < v.size()) {
    size_t j = i;
    while (j < v.size() && v[j].score == v[i].score) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (v[k].positive) {
        pos += 1;
        rank_sum += avg_rank;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

double TprAtFpr(std::span<const Scored> examples, double max_fpr) {
  const std::vector<Scored> v = SortedDescending(examples);
  double pos = 0, neg = 0;
  for (const Scored& s : v) (s.positive ? pos : neg) += 1;
  if (pos == 0) return 0.0;
  double tp = 0, fp = 0, best = 0;
  size_t i = 0;
  while (i < v.size()) {
    size_t j = i;  // all examples sharing a score are on the same side of any threshold
    while (j < v.size() && v[j].score == v[i].score) {
      (v[j].positive ? tp : fp) += 1;
      ++j;
    }
    if (neg == 0 || fp / neg <= max_fpr + 1e-12) best = std::max(best, tp / pos);
    i = j;
  }
  return best;
}

double ThresholdForFpr(std::span<const double> normal_scores, double fpr) {
  if (normal_scores.empty()) return std::numeric_limits<double>::infinity();
  std::vector<double> v(normal_scores.begin(), normal_scores.end());
  std::sort(v.begin(), v.end(), std::greater<>());
  const double n = static_cast<double>(v.size());
  // Clamped (NaN counts as 0) so that the cast below stays defined for any input.
  fpr = fpr > 0.0 ? std::min(fpr, 1.0) : 0.0;
  const auto allowed = static_cast<size_t>(std::floor(fpr * n + 1e-9));  // normals allowed >= t
  if (allowed == 0) return std::nextafter(v[0], std::numeric_limits<double>::infinity());
  if (allowed >= v.size()) return v.back();
  // t must exceed v[allowed] so that at most `allowed` normals are >= t; ties push it higher.
  return std::nextafter(v[allowed], std::numeric_limits<double>::infinity());
}

}  // namespace vigil::model
