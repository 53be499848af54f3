#include "api/limits.h"

#include <algorithm>

namespace vigil::api {

RateLimiter::RateLimiter(RateLimit limit)
    : limit_(limit), burst_(limit.burst > 0 ? limit.burst : std::max(1.0, limit.per_second)) {}

bool RateLimiter::Admit(std::string_view client, int64_t now_ns) {
  if (!enabled()) return true;
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(client));
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxClients) {
      // Forget clients whose buckets have refilled: they lose nothing by it.
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        const double refill = static_cast<double>(now_ns - b->second.last_ns) * 1e-9 *
                              limit_.per_second;
        b = b->second.tokens + refill >= burst_ ? buckets_.erase(b) : std::next(b);
      }
      if (buckets_.size() >= kMaxClients) return false;
    }
    it = buckets_.emplace(std::string(client), Bucket{burst_, now_ns}).first;
  }
  Bucket& b = it->second;
  if (now_ns > b.last_ns) {
    b.tokens = std::min(burst_, b.tokens + static_cast<double>(now_ns - b.last_ns) * 1e-9 *
                                               limit_.per_second);
    b.last_ns = now_ns;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

InFlight::Ticket InFlight::TryAcquire() {
  uint32_t n = count_.load(std::memory_order_relaxed);
  while (n < capacity_) {
    if (count_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return Ticket(this);
  }
  return Ticket();
}

}  // namespace vigil::api
