#include "core/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <httplib.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace vigil::core {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsServerTest, ServesMetricsAndHealthOnAnyPort) {
  Registry registry;
  (*registry.GetCounter("vigil_test_events_total", "Events."))->Inc(5);
  (*registry.GetHistogram("vigil_test_latency_seconds", "Latency."))->Observe(0.002);
  MetricsServer server(registry, [] {
    return HealthReport{true, {{"sensors", 2}, {"status", "ignored"}}};
  });
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  ASSERT_NE(server.port(), 0);
  EXPECT_TRUE(server.running());

  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);
  httplib::Result metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), kPrometheusTextContentType);
  EXPECT_THAT(metrics->body, HasSubstr("vigil_test_events_total 5\n"));
  EXPECT_THAT(metrics->body, HasSubstr("vigil_test_latency_seconds_count 1\n"));

  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_THAT(health->get_header_value("Content-Type"), StartsWith("application/json"));
  const nlohmann::json body = nlohmann::json::parse(health->body, nullptr, false);
  EXPECT_EQ(body, (nlohmann::json{{"status", "ok"}, {"sensors", 2}}));

  httplib::Result missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  server.Stop();
  EXPECT_FALSE(server.running());
  server.Stop();  // idempotent
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(MetricsServerTest, HealthWithoutCallbackIsOk) {
  Registry registry;
  MetricsServer server(registry);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Client client("127.0.0.1", server.port());
  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "{\"status\":\"ok\"}");
}

TEST(MetricsServerTest, UnhealthyAndThrowingCallbacks) {
  Registry registry;
  MetricsServer sick(registry, [] { return HealthReport{false, {{"reason", "no sensor"}}}; });
  ASSERT_TRUE(sick.Start("127.0.0.1", 0).ok());
  httplib::Result r = httplib::Client("127.0.0.1", sick.port()).Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(nlohmann::json::parse(r->body, nullptr, false),
            (nlohmann::json{{"status", "unhealthy"}, {"reason", "no sensor"}}));

  MetricsServer broken(registry, []() -> HealthReport { throw std::runtime_error("boom"); });
  ASSERT_TRUE(broken.Start("127.0.0.1", 0).ok());
  httplib::Result b = httplib::Client("127.0.0.1", broken.port()).Get("/healthz");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 500);
  EXPECT_THAT(b->body, HasSubstr("boom"));
}

TEST(MetricsServerTest, BindFailureNamesTheAddress) {
  Registry registry;
  MetricsServer first(registry);
  ASSERT_TRUE(first.Start("127.0.0.1", 0).ok());
  MetricsServer second(registry);
  const Status s = second.Start("127.0.0.1", first.port());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("127.0.0.1:" + std::to_string(first.port())));
  EXPECT_FALSE(second.running());

  MetricsServer bad_host(registry);
  const Status h = bad_host.Start("203.0.113.1", 0);  // TEST-NET-3: not a local address
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.message(), HasSubstr("203.0.113.1:0"));
}

TEST(MetricsServerTest, StartTwiceIsAnError) {
  Registry registry;
  MetricsServer server(registry);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const Status again = server.Start("127.0.0.1", 0);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
}

TEST(MetricsServerTest, StopRightAfterStartDoesNotHang) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    MetricsServer server(registry);
    ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
    server.Stop();
  }
}

TEST(MetricsServerTest, DestructorStops) {
  Registry registry;
  uint16_t port = 0;
  {
    MetricsServer server(registry);
    ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
    port = server.port();
  }
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1, 0);
  EXPECT_FALSE(client.Get("/metrics"));
}

// The backlog of the TCP socket listening on port `port`, from the kernel's socket diagnostics
// (what `ss -lt` shows as Send-Q): -1 when no such socket, -2 when netlink is not available.
int ListenBacklog(uint16_t port) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -2;
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } q{};
  q.header.nlmsg_len = sizeof(q);
  q.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  q.request.sdiag_family = AF_INET;
  q.request.sdiag_protocol = IPPROTO_TCP;
  q.request.idiag_states = 1u << 10;  // TCP_LISTEN
  if (::send(fd, &q, sizeof(q), 0) != static_cast<ssize_t>(sizeof(q))) {
    ::close(fd);
    return -2;
  }
  int backlog = -1;
  alignas(nlmsghdr) char buf[32768];
  for (bool done = false; !done;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        done = true;
        break;
      }
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (ntohs(m->id.idiag_sport) == port) backlog = static_cast<int>(m->idiag_wqueue);
    }
  }
  ::close(fd);
  return backlog;
}

// httplib listens with a backlog of 5: more simultaneous connects than that were refused or
// timed out under load. HttpListener raises it (the kernel caps it at net.core.somaxconn).
TEST(HttpListenerTest, ListensWithALargeBacklog) {
  Registry registry;
  MetricsServer server(registry);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const int backlog = ListenBacklog(server.port());
  if (backlog == -2) GTEST_SKIP() << "no NETLINK_SOCK_DIAG socket here";
  int somaxconn = 0;
  std::ifstream("/proc/sys/net/core/somaxconn") >> somaxconn;
  ASSERT_GT(somaxconn, 0);
  EXPECT_EQ(backlog, std::min(kHttpListenBacklog, somaxconn));
}

TEST(HttpListenerTest, ServesAndStopsRightAfterStart) {
  for (int i = 0; i < 20; ++i) {
    auto server = std::make_unique<httplib::Server>();
    server->Get("/x", [](const httplib::Request&, httplib::Response& r) {
      r.set_content("y", "text/plain");
    });
    HttpListener listener;
    ASSERT_TRUE(listener.Start(std::move(server), HostPort{"127.0.0.1", 0}, "test").ok());
    EXPECT_TRUE(listener.running());
    if (i == 0) {
      httplib::Client client("127.0.0.1", listener.port());
      auto r = client.Get("/x");
      ASSERT_TRUE(r);
      EXPECT_EQ(r->body, "y");
    }
    listener.Stop();
    EXPECT_FALSE(listener.running());
    listener.Stop();  // idempotent
  }
}

TEST(HttpListenerTest, ASecondListenerOnTheSamePortFailsNamingIt) {
  HttpListener first;
  ASSERT_TRUE(first.Start(std::make_unique<httplib::Server>(), HostPort{"127.0.0.1", 0}, "one")
                  .ok());
  HttpListener second;
  const Status s = second.Start(std::make_unique<httplib::Server>(),
                                HostPort{"127.0.0.1", first.port()}, "two");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("two: cannot listen on 127.0.0.1:" +
                                     std::to_string(first.port())));
  EXPECT_EQ(first.Start(std::make_unique<httplib::Server>(), HostPort{"127.0.0.1", 0}, "one")
                .code(),
            StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace vigil::core
