#pragma once

// The parts of the load generator for `vigil serve` (bench/api_load.cc) that are tested on
// their own (tests/unit/api/api_load_test.cc): its command line, and the incremental reader of
// HTTP/1.1 answers its event-driven mode uses on keep-alive connections.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::bench {

// How the clients are driven.
enum class LoadMode : uint8_t {
  kEvents,   // N connections multiplexed on --threads threads (epoll / gRPC completion queues)
  kThreads,  // one OS thread per client, each blocked in its call (the original mode)
  kH2,       // gRPC only: HTTP/2 connections driven with nghttp2 on --threads threads, gRPC's
             // framing done by api_load itself (no gRPC library on the client's side)
};

struct LoadOptions {
  std::string url, grpc_target, token_file;
  std::string http_host;   // from --url: http://HOST:PORT, or from --grpc HOST:PORT
  uint16_t http_port = 0;
  LoadMode mode = LoadMode::kEvents;
  int clients = 8;
  int threads = 1;  // event mode only
  double seconds = 5;
  int window = 64;
  int batch = 0;
  bool vary = false;
  bool json = false;
};

// Parses api_load's arguments into `out`. Returns -1 when the run should go on, otherwise the
// exit code (0 for --help, 2 for a bad argument) with the text to print in `message` (usage or
// "api_load: error: ..." naming the argument and why).
int ParseLoadArgs(int argc, const char* const* argv, LoadOptions* out, std::string* message);

// "http://HOST:PORT" (an optional trailing "/"), HOST a name or IPv4 address, or [IPv6].
// False with `why` otherwise (https, no port, a path).
bool SplitHttpUrl(std::string_view url, std::string* host, uint16_t* port, std::string* why);

// A gRPC message as a request body: a 5-byte prefix (0: not compressed; the length, 4 bytes
// big-endian) and the message.
std::string FrameGrpcMessage(std::string_view message);

// The one message of a unary gRPC answer's body (its DATA frames joined): the prefix must say
// "not compressed" and give exactly the bytes that follow. False with `why` (naming the
// offset) otherwise.
bool UnframeGrpcMessage(std::string_view body, std::string_view* message, std::string* why);

// The system calls of request `n` of client `c`: a fixed pattern whose first six calls carry a
// number unique to (run, c, n) when `vary` is set, so that no two requests of this run, nor of
// an earlier run against the same server (a random salt per process), share a verdict-cache
// entry.
void RequestCalls(const LoadOptions& o, int c, uint64_t n, std::vector<int32_t>* out);

// The JSON body of the next score (or score:batch of o.batch items) request of client `c`;
// advances `*n` by the number of items.
std::string ScoreBody(const LoadOptions& o, int c, uint64_t* n);

// How many times `needle` occurs in `text` ("\"cached\":true" in an answer).
uint64_t CountOccurrences(std::string_view text, std::string_view needle);

// Reads one HTTP/1.1 answer at a time from the bytes of a keep-alive connection. Only what
// `vigil serve` sends is accepted: a status line, headers, and a body of Content-Length bytes
// (no chunked encoding); headers up to 64 KiB, bodies up to 64 MiB.
class HttpAnswerReader {
 public:
  enum class State : uint8_t { kMore, kDone, kError };

  // Appends `bytes`. kDone: an answer is complete (status(), body(), close()); call Next()
  // before feeding the next one's bytes (bytes past the answer are kept for it).
  // kError: error() says what is wrong; the connection cannot be read further.
  State Feed(std::string_view bytes);
  // Drops the completed answer; returns the state of what is left (kMore or kDone if a whole
  // second answer was already buffered).
  State Next();

  int status() const { return status_; }
  std::string_view body() const;
  bool close() const { return close_; }  // "Connection: close"
  const std::string& error() const { return error_; }

 private:
  State Parse();
  State Fail(std::string why);

  std::string buf_;
  size_t head_end_ = 0;  // offset of the body; 0 while the head is incomplete
  size_t body_len_ = 0;
  int status_ = 0;
  bool close_ = false;
  State state_ = State::kMore;
  std::string error_;
};

}  // namespace vigil::bench
