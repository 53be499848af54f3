#include "api/orders.h"

#include "api/codec.h"

namespace vigil::api {

OrderBook::OrderBook(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

v1::OrderStatus OrderBook::StatusOf(const Entry& e) {
  v1::OrderStatus s;
  s.set_schema_version(std::string(kSchemaVersion));
  *s.mutable_order() = e.order;
  s.set_state(e.state);
  s.set_detail(e.detail);
  return s;
}

bool OrderBook::MakeRoomLocked() {
  if (orders_.size() < capacity_) return true;
  for (auto it = age_.begin(); it != age_.end(); ++it) {
    auto o = orders_.find(*it);
    if (o == orders_.end()) continue;
    if (o->second.state != "done" && o->second.state != "failed") continue;
    auto& ids = hosts_[o->second.order.host()];
    std::erase(ids, *it);
    orders_.erase(o);
    age_.erase(it);
    return true;
  }
  return false;
}

core::Result<v1::OrderStatus> OrderBook::IssueLocked(v1::Order order,
                                                     std::unique_lock<std::mutex>& lock) {
  (void)lock;
  if (!MakeRoomLocked()) {
    return core::Status(core::StatusCode::kResourceExhausted,
                        "order book full: " + std::to_string(capacity_) +
                            " orders are still open (agents are not acknowledging)");
  }
  order.set_schema_version(std::string(kSchemaVersion));
  order.set_id("ord-" + std::to_string(next_id_++));
  Entry e;
  e.order = std::move(order);
  e.seq = ++host_seq_[e.order.host()];
  const std::string id = e.order.id();
  hosts_[e.order.host()].push_back(id);
  age_.push_back(id);
  auto& stored = orders_.emplace(id, std::move(e)).first->second;
  cv_.notify_all();
  return StatusOf(stored);
}

core::Result<v1::OrderStatus> OrderBook::Enforce(const v1::EnforceRequest& r,
                                                 int64_t now_unix_ms) {
  v1::Order o;
  o.set_host(r.host());
  o.set_action(r.action());
  o.set_pid(r.pid());
  o.set_path(r.path());
  o.set_reason(r.reason());
  o.set_issued_unix_ms(now_unix_ms);
  std::unique_lock lock(mu_);
  return IssueLocked(std::move(o), lock);
}

core::Result<v1::OrderStatus> OrderBook::Rollback(const v1::RollbackRequest& r,
                                                  int64_t now_unix_ms) {
  std::unique_lock lock(mu_);
  auto it = orders_.find(r.order_id());
  if (it == orders_.end()) {
    return core::NotFound("order_id: no order \"" + r.order_id().substr(0, 64) + "\"");
  }
  if (it->second.order.action() == "rollback") {
    return core::FailedPrecondition("order_id: \"" + r.order_id() + "\" is itself a rollback");
  }
  v1::Order o;
  o.set_host(it->second.order.host());
  o.set_action("rollback");
  o.set_pid(it->second.order.pid());
  o.set_path(it->second.order.path());
  o.set_reason(r.reason());
  o.set_rollback_of(r.order_id());
  o.set_issued_unix_ms(now_unix_ms);
  return IssueLocked(std::move(o), lock);
}

core::Result<v1::OrderStatus> OrderBook::Acknowledge(const v1::Ack& ack) {
  std::lock_guard lock(mu_);
  auto it = orders_.find(ack.order_id());
  if (it == orders_.end()) {
    return core::NotFound("order_id: no order \"" + ack.order_id().substr(0, 64) + "\"");
  }
  Entry& e = it->second;
  if (e.state == "done" || e.state == "failed") {
    return core::FailedPrecondition("order_id: \"" + ack.order_id() +
                                    "\" was already acknowledged (" + e.state + ")");
  }
  e.state = ack.ok() ? "done" : "failed";
  e.detail = ack.detail();
  cv_.notify_all();
  return StatusOf(e);
}

core::Result<v1::OrderStatus> OrderBook::Await(const std::string& id,
                                               std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  const auto until = std::chrono::steady_clock::now() + wait;
  while (true) {
    auto it = orders_.find(id);
    if (it == orders_.end()) return core::NotFound("order_id: no order \"" + id + "\"");
    const bool closed = it->second.state == "done" || it->second.state == "failed";
    if (closed || shutdown_ || cv_.wait_until(lock, until) == std::cv_status::timeout) {
      it = orders_.find(id);
      if (it == orders_.end()) return core::NotFound("order_id: no order \"" + id + "\"");
      return StatusOf(it->second);
    }
  }
}

std::optional<v1::Order> OrderBook::Next(const std::string& host, uint64_t* cursor,
                                         std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  const auto until = std::chrono::steady_clock::now() + wait;
  while (!shutdown_) {
    auto h = hosts_.find(host);
    if (h != hosts_.end()) {
      for (const std::string& id : h->second) {
        Entry& e = orders_.at(id);
        if (e.seq <= *cursor) continue;
        *cursor = e.seq;
        if (e.state == "queued") e.state = "delivered";
        return e.order;
      }
    }
    if (cv_.wait_until(lock, until) == std::cv_status::timeout) return std::nullopt;
  }
  return std::nullopt;
}

void OrderBook::Shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

bool OrderBook::IsShutdown() {
  std::lock_guard lock(mu_);
  return shutdown_;
}

}  // namespace vigil::api
