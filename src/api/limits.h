#pragma once

// Admission control for the decision service: per-client rate limits and a bound on requests
// in flight, so that overload is answered at once (429 / RESOURCE_EXHAUSTED, 503 /
// UNAVAILABLE) instead of queueing without end.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace vigil::api {

struct RateLimit {
  double per_second = 0;  // sustained requests per second per client; 0: unlimited
  double burst = 0;       // bucket size; 0: max(1, per_second)
};

// A token bucket per client name. Thread-safe. Time comes from the caller (monotonic ns), so
// tests need no sleeps.
class RateLimiter {
 public:
  explicit RateLimiter(RateLimit limit);
  // True when `client` may make one more request at `now_ns`; false: over its rate.
  bool Admit(std::string_view client, int64_t now_ns);
  bool enabled() const { return limit_.per_second > 0; }

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ns = 0;
  };
  static constexpr size_t kMaxClients = 65536;  // beyond: full buckets are forgotten first

  const RateLimit limit_;
  const double burst_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// Counts requests in flight against a capacity. Thread-safe, lock-free.
class InFlight {
 public:
  explicit InFlight(uint32_t capacity) : capacity_(capacity) {}

  // A held slot; releases it when destroyed. Empty (false) when the capacity was reached.
  class Ticket {
   public:
    Ticket() = default;
    explicit Ticket(InFlight* owner) : owner_(owner) {}
    Ticket(Ticket&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
    Ticket& operator=(Ticket&& o) noexcept {
      if (this != &o) {
        Release();
        owner_ = o.owner_;
        o.owner_ = nullptr;
      }
      return *this;
    }
    ~Ticket() { Release(); }
    void Release() {
      if (owner_ != nullptr) owner_->count_.fetch_sub(1, std::memory_order_relaxed);
      owner_ = nullptr;
    }
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    InFlight* owner_ = nullptr;
  };

  Ticket TryAcquire();
  uint32_t count() const { return count_.load(std::memory_order_relaxed); }
  uint32_t capacity() const { return capacity_; }

 private:
  const uint32_t capacity_;
  std::atomic<uint32_t> count_{0};
};

}  // namespace vigil::api
