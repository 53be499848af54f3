// The load generator's command line and its reader of HTTP answers (bench/api/load_lib.h).

#include "api/load_lib.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vigil::bench {
namespace {

// Runs ParseLoadArgs on "api_load" + `args`; returns its code, with `out` and `message`.
int Parse(const std::vector<const char*>& args, LoadOptions* out, std::string* message) {
  std::vector<const char*> argv = {"api_load"};
  argv.insert(argv.end(), args.begin(), args.end());
  return ParseLoadArgs(static_cast<int>(argv.size()), argv.data(), out, message);
}

TEST(ApiLoadArgsTest, DefaultsToEventsOnOneThread) {
  LoadOptions o;
  std::string m;
  ASSERT_EQ(Parse({"--url", "http://127.0.0.1:8080", "--clients", "8"}, &o, &m), -1) << m;
  EXPECT_EQ(o.mode, LoadMode::kEvents);
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.clients, 8);
  EXPECT_EQ(o.http_host, "127.0.0.1");
  EXPECT_EQ(o.http_port, 8080);
  ASSERT_EQ(Parse({"--grpc", "127.0.0.1:9090", "--clients", "64", "--threads", "2", "--batch",
                   "64", "--vary"},
                  &o, &m),
            -1)
      << m;
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.batch, 64);
  EXPECT_TRUE(o.vary);
  ASSERT_EQ(Parse({"--grpc", "h:1", "--mode", "threads", "--clients", "5"}, &o, &m), -1) << m;
  EXPECT_EQ(o.mode, LoadMode::kThreads);
  EXPECT_EQ(o.threads, 5);  // one per client
  ASSERT_EQ(Parse({"--grpc", "[::1]:9090", "--mode", "h2", "--clients", "8", "--threads", "2"},
                  &o, &m),
            -1)
      << m;
  EXPECT_EQ(o.mode, LoadMode::kH2);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.http_host, "::1");  // nghttp2's connections are api_load's own sockets
  EXPECT_EQ(o.http_port, 9090);
}

TEST(ApiLoadArgsTest, RefusesBadArgumentsNamingThem) {
  struct Case {
    std::vector<const char*> args;
    const char* expect;  // in the message
  };
  const std::vector<Case> cases = {
      {{}, "--url or --grpc"},
      {{"--url", "http://a:1", "--grpc", "a:2"}, "excludes"},
      {{"--grpc", "a:1", "--mode", "fibers"}, "--mode"},
      {{"--grpc", "a:1", "--mode", "threads", "--threads", "2"}, "--threads is for --mode events"},
      {{"--url", "http://a:1", "--mode", "h2"}, "--mode h2 is for --grpc"},
      {{"--grpc", "a", "--mode", "h2"}, "--grpc \"a\": has no :PORT"},
      {{"--grpc", "a:1", "--mode", "h2", "--clients", "2", "--threads", "3"}, "more than"},
      {{"--grpc", "a:1", "--clients", "2", "--threads", "3"}, "more than --clients 2"},
      {{"--grpc", "a:1", "--threads", "0"}, "--threads"},
      {{"--grpc", "a:1", "--threads", "65"}, "--threads"},
      {{"--grpc", "a:1", "--clients", "0"}, "--clients"},
      {{"--grpc", "a:1", "--batch", "1025"}, "--batch"},
      {{"--grpc", "a:1", "--seconds", "0"}, "--seconds"},
      {{"--url", "https://a:1"}, "http://"},
      {{"--url", "http://a"}, "no :PORT"},
      {{"--url", "http://a:0"}, "port"},
      {{"--url", "http://a:99999"}, "port"},
      {{"--url", "http://a:80/v1"}, "without a path"},
      {{"--url", "http://:80"}, "no host"},
      {{"--grpc", "a:1", "--what"}, "--what"},
  };
  for (const Case& c : cases) {
    LoadOptions o;
    std::string m;
    EXPECT_EQ(Parse(c.args, &o, &m), 2) << c.expect;
    EXPECT_NE(m.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in: " << m;
  }
  LoadOptions o;
  std::string m;
  EXPECT_EQ(Parse({"--help"}, &o, &m), 0);
  EXPECT_NE(m.find("--mode"), std::string::npos);
}

TEST(ApiLoadArgsTest, SplitsIpv6Urls) {
  std::string host, why;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHttpUrl("http://[::1]:8080/", &host, &port, &why)) << why;
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(SplitHttpUrl("http://[::1]8080", &host, &port, &why));
}

TEST(ApiLoadRequestTest, VariesRequestsOnlyWhenAsked) {
  LoadOptions o;
  o.window = 16;
  std::vector<int32_t> a, b;
  RequestCalls(o, 0, 0, &a);
  RequestCalls(o, 1, 5, &b);
  EXPECT_EQ(a, b);
  o.vary = true;
  RequestCalls(o, 0, 0, &a);
  RequestCalls(o, 0, 1, &b);
  EXPECT_NE(a, b);
  uint64_t n = 0;
  o.batch = 3;
  const std::string body = ScoreBody(o, 0, &n);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(CountOccurrences(body, "\"subject\":\"bench\""), 3u);
  EXPECT_EQ(body.rfind("{\"schema_version\":\"vigil.api/v1\",\"items\":[{", 0), 0u) << body;
}

using State = HttpAnswerReader::State;

TEST(HttpAnswerReaderTest, ReadsAnswersSplitAnywhereAndBackToBack) {
  const std::string one =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhello";
  const std::string two = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n"
                          "Connection: close\r\n\r\n{}";
  const std::string both = one + two;
  for (size_t split = 0; split <= both.size(); ++split) {
    HttpAnswerReader r;
    State s = r.Feed(std::string_view(both).substr(0, split));
    if (split < one.size()) {
      ASSERT_EQ(s, State::kMore) << split;
      s = r.Feed(std::string_view(both).substr(split));
    }
    ASSERT_EQ(s, State::kDone) << split;
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "hello");
    EXPECT_FALSE(r.close());
    s = r.Next();
    if (s == State::kMore) s = r.Feed(std::string_view(both).substr(split));
    ASSERT_EQ(s, State::kDone) << split;
    EXPECT_EQ(r.status(), 429);
    EXPECT_EQ(r.body(), "{}");
    EXPECT_TRUE(r.close());
    EXPECT_EQ(r.Next(), State::kMore);
  }
}

TEST(HttpAnswerReaderTest, RefusesWhatVigilServeDoesNotSend) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"SMTP 220 hello\r\n\r\n", "status line"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "three digits"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"},
      {"HTTP/1.1 200 OK\r\n\r\n", "without Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "64 MiB"},
      {"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "without a name"},
      {"HTTP/1.1 200 OK\r\n" + std::string(70000, 'x'), "64 KiB"},
  };
  for (const auto& [bytes, why] : cases) {
    HttpAnswerReader r;
    EXPECT_EQ(r.Feed(bytes), State::kError) << bytes.substr(0, 40);
    EXPECT_NE(r.error().find(why), std::string::npos) << r.error();
    EXPECT_EQ(r.Feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), State::kError);
  }
  HttpAnswerReader r;
  EXPECT_EQ(r.Feed("HTTP/1.1 204 No Content\r\n\r\n"), State::kDone);
  EXPECT_EQ(r.body(), "");
}

TEST(GrpcFramingTest, FramesAndUnframesOneMessage) {
  const std::string framed = FrameGrpcMessage(std::string(300, 'm'));
  ASSERT_EQ(framed.size(), 305u);
  EXPECT_EQ(framed.substr(0, 5), std::string("\0\0\0\x01\x2c", 5));  // 300 = 0x12c
  std::string_view message;
  std::string why;
  ASSERT_TRUE(UnframeGrpcMessage(framed, &message, &why)) << why;
  EXPECT_EQ(message, std::string(300, 'm'));
  ASSERT_TRUE(UnframeGrpcMessage(FrameGrpcMessage(""), &message, &why)) << why;
  EXPECT_EQ(message, "");
}

TEST(GrpcFramingTest, RefusesWhatAUnaryAnswerDoesNotHold) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "shorter than the 5-byte prefix"},
      {std::string("\0\0\0\0", 4), "shorter than the 5-byte prefix"},
      {std::string("\x01\0\0\0\x01x", 6), "not 0 (compressed"},
      {std::string("\0\0\0\0\x02x", 6), "length of 2 but 1 bytes follow"},
      {std::string("\0\0\0\0\x01xy", 7), "length of 1 but 2 bytes follow"},
      {FrameGrpcMessage("a") + FrameGrpcMessage("b"), "length of 1 but 7 bytes follow"},
      {std::string("\0\xff\xff\xff\xffx", 6), "length of 4294967295"},
  };
  for (const auto& [bytes, why] : cases) {
    std::string_view message;
    std::string error;
    EXPECT_FALSE(UnframeGrpcMessage(bytes, &message, &error)) << why;
    EXPECT_NE(error.find(why), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace vigil::bench
