#pragma once

// The k most surprising calls of a stream, each kept with the calls just before it, for the
// explanation of a verdict. Recording does not allocate; one entry per distinct call sequence.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/event.h"
#include "model/internal/call_names.h"

namespace vigil::model::internal {

class TopCalls {
 public:
  static constexpr int kMaxCalls = 17;  // context + the call itself

  explicit TopCalls(int k) : top_(static_cast<size_t>(std::max(k, 0))) {}

  // Whether a call this surprising would enter the list (cheap; call before building `ids`).
  bool Qualifies(float bits) const { return !top_.empty() && bits > top_.back().bits; }

  // `ids` (CallId values): the context, oldest first, then the call; n is clamped to kMaxCalls.
  void Record(float bits, const uint32_t* ids, int n) {
    if (!Qualifies(bits)) return;
    Entry e;
    e.bits = bits;
    e.n = std::clamp(n, 0, kMaxCalls);
    std::copy(ids + (n - e.n), ids + n, e.ids);
    for (const Entry& existing : top_) {
      if (existing.n == e.n && std::equal(e.ids, e.ids + e.n, existing.ids)) return;
    }
    top_.back() = e;
    std::sort(top_.begin(), top_.end(), [](const Entry& a, const Entry& b) { return a.bits > b.bits; });
  }

  // Appends "call call ... call" with its surprisal (bits) as weight, most surprising first.
  void AppendTo(std::vector<core::Evidence>* out) const {
    out->reserve(out->size() + top_.size());
    for (const Entry& t : top_) {
      if (t.n == 0) break;
      std::string what;
      for (int i = 0; i < t.n; ++i) {
        if (i) what += ' ';
        what += CallName(t.ids[i]);
      }
      out->push_back({std::move(what), t.bits});
    }
  }

 private:
  struct Entry {
    float bits = 0;
    int n = 0;
    uint32_t ids[kMaxCalls] = {};
  };
  std::vector<Entry> top_;
};

}  // namespace vigil::model::internal
