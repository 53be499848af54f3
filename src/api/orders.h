#pragma once

// The control plane's order book: enforcement orders (and their rollbacks) issued through
// Control.Enforce / Control.Rollback, handed to the agents that watch their host
// (Control.Watch) and closed by the agents' acknowledgements (Control.Acknowledge).
//
// An order's state moves queued -> delivered -> done | failed. Orders live in memory; a
// restarted server has none (agents re-watch and the issuer sees NOT_FOUND for old ids).
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "core/status.h"
#include "vigil/v1/api.pb.h"

namespace vigil::api {

class OrderBook {
 public:
  // At most `capacity` orders are kept; beyond it, the oldest finished ones are forgotten, and
  // when every kept order is still open a new one is refused (kResourceExhausted).
  explicit OrderBook(size_t capacity = 100'000);

  // Issues an order (validated request). `now_unix_ms` stamps it.
  core::Result<v1::OrderStatus> Enforce(const v1::EnforceRequest& r, int64_t now_unix_ms);
  // Issues the rollback of order `r.order_id()` to the same host. kNotFound for an unknown id;
  // kFailedPrecondition for a rollback of a rollback.
  core::Result<v1::OrderStatus> Rollback(const v1::RollbackRequest& r, int64_t now_unix_ms);
  // Records an agent's acknowledgement. kNotFound for an unknown id; kFailedPrecondition when
  // the order was already acknowledged.
  core::Result<v1::OrderStatus> Acknowledge(const v1::Ack& ack);
  // The order's status once it is acknowledged or `wait` has passed. kNotFound for an unknown id.
  core::Result<v1::OrderStatus> Await(const std::string& id, std::chrono::milliseconds wait);

  // The next order for `host` after `*cursor` (0 at first), waiting up to `wait`; marks it
  // delivered and advances the cursor. nullopt on timeout or after Shutdown().
  std::optional<v1::Order> Next(const std::string& host, uint64_t* cursor,
                                std::chrono::milliseconds wait);

  // Wakes every waiter; Next returns nullopt from then on.
  void Shutdown();
  // Whether Shutdown() was called (a waiter's nullopt is then final, not a timeout).
  bool IsShutdown();

 private:
  struct Entry {
    v1::Order order;
    std::string state = "queued";
    std::string detail;
    uint64_t seq = 0;  // per host, from 1
  };
  core::Result<v1::OrderStatus> IssueLocked(v1::Order order, std::unique_lock<std::mutex>& lock);
  static v1::OrderStatus StatusOf(const Entry& e);
  bool MakeRoomLocked();

  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;
  uint64_t next_id_ = 1;
  std::map<std::string, Entry> orders_;                  // by id
  std::deque<std::string> age_;                          // ids, oldest first
  std::map<std::string, std::deque<std::string>> hosts_; // host -> ids in issue order
  std::map<std::string, uint64_t> host_seq_;
};

}  // namespace vigil::api
