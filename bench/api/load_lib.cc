#include "load_lib.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <random>
#include <sstream>

namespace vigil::bench {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64 * 1024 * 1024;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool SplitHttpUrl(std::string_view url, std::string* host, uint16_t* port, std::string* why) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    *why = "must start with http:// (the load generator speaks plain HTTP only)";
    return false;
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    *why = "must be http://HOST:PORT without a path";
    return false;
  }
  size_t colon;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      *why = "must be http://[IPv6]:PORT";
      return false;
    }
    *host = std::string(rest.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "has no :PORT";
      return false;
    }
    *host = std::string(rest.substr(0, colon));
  }
  const std::string_view p = rest.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (host->empty() || p.empty() || ec != std::errc() || end != p.data() + p.size() ||
      value == 0 || value > 65535) {
    *why = host->empty() ? "has no host" : "port is not a number in 1..65535";
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

std::string FrameGrpcMessage(std::string_view message) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(message.size());
  for (int i = 0; i < 4; ++i) out[static_cast<size_t>(1 + i)] = static_cast<char>(n >> (24 - 8 * i));
  out.append(message);
  return out;
}

bool UnframeGrpcMessage(std::string_view body, std::string_view* message, std::string* why) {
  if (body.size() < 5) {
    *why = "gRPC message: " + std::to_string(body.size()) + " bytes, shorter than the 5-byte prefix";
    return false;
  }
  if (body[0] != 0) {
    *why = "gRPC message: byte 0 is " + std::to_string(static_cast<unsigned char>(body[0])) +
           ", not 0 (compressed messages are not asked for)";
    return false;
  }
  uint64_t n = 0;
  for (size_t i = 1; i < 5; ++i) n = (n << 8) | static_cast<unsigned char>(body[i]);
  if (n != body.size() - 5) {
    *why = "gRPC message: bytes 1-4 give a length of " + std::to_string(n) + " but " +
           std::to_string(body.size() - 5) + " bytes follow at offset 5";
    return false;
  }
  *message = body.substr(5);
  return true;
}

int ParseLoadArgs(int argc, const char* const* argv, LoadOptions* out, std::string* message) {
  CLI::App app{
      "Load generator for vigil serve's score APIs (HTTP/JSON or gRPC), closed loop: each "
      "client sends its next request when its last one is answered.\n"
      "--mode events (default): the clients' connections are multiplexed on --threads threads "
      "(epoll over keep-alive HTTP connections; gRPC's asynchronous completion queues, one "
      "channel per client), as wrk and ghz do.\n"
      "--mode threads: one OS thread per client, each blocked in its call (httplib's client; "
      "gRPC's synchronous stub); on a small machine its threads compete with the server's.\n"
      "--mode h2 (gRPC only): like events, but the clients' HTTP/2 connections are driven with "
      "nghttp2 over epoll and api_load frames the gRPC messages itself, without gRPC's client "
      "library: the lightest client, so that on a machine it shares with the server it takes "
      "the least CPU from it."};
  LoadOptions o;
  std::string mode = "events";
  auto* url = app.add_option("--url", o.url, "http://HOST:PORT of vigil serve's HTTP API");
  auto* grpc_target =
      app.add_option("--grpc", o.grpc_target, "HOST:PORT of vigil serve's gRPC API (no TLS)");
  url->excludes(grpc_target);
  app.add_option("--mode", mode, "events, threads or h2 (see above)")
      ->capture_default_str()
      ->check(CLI::IsMember({"events", "threads", "h2"}));
  auto* threads = app.add_option("--threads", o.threads,
                                 "Modes events and h2: threads the clients are spread over "
                                 "(at most --clients)")
                      ->capture_default_str()
                      ->check(CLI::Range(1, 64));
  app.add_option("--clients", o.clients, "Concurrent clients (connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--seconds", o.seconds, "Duration")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--window", o.window, "System calls per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--batch", o.batch, "Items per score:batch call (0: single scores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--token-file", o.token_file, "Bearer token file (its first line)");
  app.add_flag("--vary", o.vary, "A different request each time (verdict-cache misses)");
  app.add_flag("--json", o.json, "Print the figures as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream sout, serr;
    const int code = app.exit(e, sout, serr);
    *message = sout.str() + serr.str();
    return code == 0 ? 0 : 2;
  }
  auto fail = [message](const std::string& why) {
    *message = "api_load: error: " + why + "\n";
    return 2;
  };
  if (o.url.empty() == o.grpc_target.empty()) return fail("give --url or --grpc");
  o.mode = mode == "threads" ? LoadMode::kThreads
          : mode == "h2"    ? LoadMode::kH2
                            : LoadMode::kEvents;
  if (o.mode == LoadMode::kThreads && threads->count() > 0) {
    return fail("--threads is for --mode events or h2 (--mode threads runs one thread per client)");
  }
  if (o.mode == LoadMode::kH2 && o.grpc_target.empty()) {
    return fail("--mode h2 is for --grpc (HTTP/JSON's event mode is --mode events)");
  }
  if (o.mode != LoadMode::kThreads && o.threads > o.clients) {
    return fail("--threads " + std::to_string(o.threads) + " is more than --clients " +
                std::to_string(o.clients));
  }
  if (!o.url.empty()) {
    std::string why;
    if (!SplitHttpUrl(o.url, &o.http_host, &o.http_port, &why)) {
      return fail("--url \"" + o.url + "\": " + why);
    }
  }
  if (o.mode == LoadMode::kH2) {
    std::string why;
    if (!SplitHttpUrl("http://" + o.grpc_target, &o.http_host, &o.http_port, &why)) {
      return fail("--grpc \"" + o.grpc_target + "\": " + why);
    }
  }
  if (o.mode == LoadMode::kThreads) o.threads = o.clients;
  *out = std::move(o);
  return -1;
}

void RequestCalls(const LoadOptions& o, int c, uint64_t n, std::vector<int32_t>* out) {
  static const uint64_t run_salt = std::random_device{}() & 0xffff;
  out->resize(static_cast<size_t>(o.window));
  for (int i = 0; i < o.window; ++i) (*out)[static_cast<size_t>(i)] = (i * 7 + 3) % 200;
  if (o.vary) {
    const uint64_t id = (run_salt << 32) | ((n << 12) + static_cast<uint64_t>(c));
    for (int i = 0; i < std::min(6, o.window); ++i) {
      (*out)[static_cast<size_t>(i)] = static_cast<int32_t>((id >> (8 * i)) & 0xff);
    }
  }
}

std::string ScoreBody(const LoadOptions& o, int c, uint64_t* n) {
  // A single score's fields sit in the top object; a batch's in its items.
  std::vector<int32_t> calls;
  std::string body = R"({"schema_version":"vigil.api/v1",)";
  if (o.batch > 0) body += R"("items":[)";
  const int items = std::max(1, o.batch);
  for (int k = 0; k < items; ++k) {
    RequestCalls(o, c, (*n)++, &calls);
    if (o.batch > 0) body += '{';
    body += R"("subject":"bench","arch":"i386","syscalls":[)";
    for (size_t i = 0; i < calls.size(); ++i) {
      body += std::to_string(calls[i]);
      if (i + 1 < calls.size()) body += ',';
    }
    body += ']';
    if (o.batch > 0) body += k + 1 < items ? "}," : "}]";
  }
  body += '}';
  return body;
}

uint64_t CountOccurrences(std::string_view text, std::string_view needle) {
  uint64_t n = 0;
  for (size_t at = 0; (at = text.find(needle, at)) != std::string_view::npos; at += needle.size()) {
    ++n;
  }
  return n;
}

HttpAnswerReader::State HttpAnswerReader::Fail(std::string why) {
  error_ = std::move(why);
  state_ = State::kError;
  return state_;
}

HttpAnswerReader::State HttpAnswerReader::Feed(std::string_view bytes) {
  if (state_ == State::kError) return state_;
  buf_.append(bytes);
  if (state_ == State::kDone) return state_;
  return Parse();
}

HttpAnswerReader::State HttpAnswerReader::Next() {
  if (state_ != State::kDone) return state_;
  buf_.erase(0, head_end_ + body_len_);
  head_end_ = body_len_ = 0;
  status_ = 0;
  close_ = false;
  state_ = State::kMore;
  return Parse();
}

std::string_view HttpAnswerReader::body() const {
  if (state_ != State::kDone) return {};
  return std::string_view(buf_).substr(head_end_, body_len_);
}

HttpAnswerReader::State HttpAnswerReader::Parse() {
  if (head_end_ == 0) {
    const size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buf_.size() > kMaxHead) return Fail("answer head longer than 64 KiB");
      return State::kMore;
    }
    if (end + 4 > kMaxHead) return Fail("answer head longer than 64 KiB");
    const std::string_view head = std::string_view(buf_).substr(0, end);
    size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    // "HTTP/1.x NNN reason"
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
        status_line[8] != ' ' || (status_line.size() > 12 && status_line[12] != ' ')) {
      return Fail("not an HTTP/1.x status line: \"" + std::string(status_line.substr(0, 64)) +
                  "\"");
    }
    int code = 0;
    auto [p, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, code);
    if (ec != std::errc() || p != status_line.data() + 12 || code < 100 || code > 999) {
      return Fail("status code is not three digits");
    }
    bool has_length = false;
    size_t length = 0;
    bool close = status_line.substr(0, 8) == "HTTP/1.0";
    while (eol != std::string_view::npos) {
      const size_t start = eol + 2;
      eol = head.find("\r\n", start);
      const std::string_view line = head.substr(start, eol == std::string_view::npos
                                                           ? std::string_view::npos
                                                           : eol - start);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return Fail("header line without a name: \"" + std::string(line.substr(0, 64)) + "\"");
      }
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (IEquals(name, "Content-Length")) {
        size_t v = 0;
        auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (e != std::errc() || q != value.data() + value.size() || value.empty() ||
            (has_length && v != length)) {
          return Fail("bad Content-Length \"" + std::string(value.substr(0, 32)) + "\"");
        }
        if (v > kMaxBody) return Fail("body longer than 64 MiB");
        has_length = true;
        length = v;
      } else if (IEquals(name, "Transfer-Encoding")) {
        return Fail("Transfer-Encoding is not supported (Content-Length bodies only)");
      } else if (IEquals(name, "Connection")) {
        if (IEquals(value, "close")) close = true;
        if (IEquals(value, "keep-alive")) close = false;
      }
    }
    // 1xx, 204 and 304 have no body; anything else needs a length on a keep-alive connection.
    const bool bodiless = code < 200 || code == 204 || code == 304;
    if (!has_length && !bodiless) return Fail("answer without Content-Length");
    status_ = code;
    close_ = close;
    head_end_ = end + 4;
    body_len_ = bodiless ? 0 : length;
  }
  if (buf_.size() - head_end_ < body_len_) return State::kMore;
  state_ = State::kDone;
  return state_;
}

}  // namespace vigil::bench
