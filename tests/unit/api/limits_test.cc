#include "api/limits.h"

#include <gtest/gtest.h>

#include "api/orders.h"
#include "api/codec.h"

namespace vigil::api {
namespace {

TEST(RateLimiterTest, BurstThenRefillPerClient) {
  RateLimiter r({/*per_second=*/10, /*burst=*/3});
  int64_t t = 1'000'000'000;
  EXPECT_TRUE(r.Admit("a", t));
  EXPECT_TRUE(r.Admit("a", t));
  EXPECT_TRUE(r.Admit("a", t));
  EXPECT_FALSE(r.Admit("a", t));
  EXPECT_TRUE(r.Admit("b", t));  // another client has its own bucket
  t += 100'000'000;              // 0.1 s: one token back
  EXPECT_TRUE(r.Admit("a", t));
  EXPECT_FALSE(r.Admit("a", t));
  RateLimiter off({});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(off.Admit("a", t));
}

TEST(InFlightTest, BoundsAndReleases) {
  InFlight f(2);
  auto a = f.TryAcquire();
  {
    auto b = f.TryAcquire();
    EXPECT_TRUE(b);
    EXPECT_FALSE(f.TryAcquire());
  }
  EXPECT_TRUE(f.TryAcquire());
  EXPECT_EQ(f.count(), 1u);
}

TEST(OrderBookTest, EnforceWatchAckRollback) {
  OrderBook book(4);
  v1::EnforceRequest e;
  e.set_host("h1");
  e.set_action("kill");
  e.set_pid(42);
  auto issued = book.Enforce(e, 1000);
  ASSERT_TRUE(issued.has_value());
  EXPECT_EQ(issued->state(), "queued");
  uint64_t cursor = 0;
  auto order = book.Next("h1", &cursor, std::chrono::milliseconds(0));
  ASSERT_TRUE(order.has_value());
  EXPECT_EQ(order->pid(), 42u);
  EXPECT_FALSE(book.Next("h1", &cursor, std::chrono::milliseconds(0)).has_value());
  EXPECT_FALSE(book.Next("h2", &cursor, std::chrono::milliseconds(0)).has_value());
  v1::Ack ack;
  ack.set_order_id(order->id());
  ack.set_ok(true);
  ack.set_detail("killed");
  EXPECT_EQ(book.Acknowledge(ack)->state(), "done");
  EXPECT_EQ(book.Acknowledge(ack).error().code(), core::StatusCode::kFailedPrecondition);
  v1::RollbackRequest rb;
  rb.set_order_id(order->id());
  auto undo = book.Rollback(rb, 2000);
  ASSERT_TRUE(undo.has_value());
  EXPECT_EQ(undo->order().action(), "rollback");
  EXPECT_EQ(undo->order().rollback_of(), order->id());
  rb.set_order_id("ord-999");
  EXPECT_EQ(book.Rollback(rb, 0).error().code(), core::StatusCode::kNotFound);
}

TEST(OrderBookTest, FullBookOfOpenOrdersRefuses) {
  OrderBook book(2);
  v1::EnforceRequest e;
  e.set_host("h");
  e.set_action("freeze");
  e.set_pid(1);
  ASSERT_TRUE(book.Enforce(e, 0).has_value());
  ASSERT_TRUE(book.Enforce(e, 0).has_value());
  EXPECT_EQ(book.Enforce(e, 0).error().code(), core::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace vigil::api
