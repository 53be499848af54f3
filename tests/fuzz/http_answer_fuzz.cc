// libFuzzer target for api_load's readers of answers (bench/api/load_lib.h): the HTTP/1.1
// reader gets the bytes a keep-alive connection delivers, fed in pieces whose sizes the first
// byte picks. Any bytes must give answers, "more", or an error with a reason; never a crash, a
// body longer than the bytes fed, or an answer after an error. The same bytes are also a gRPC
// answer's body for UnframeGrpcMessage (--mode h2): a message that is exactly the bytes after
// the 5-byte prefix, or an error with a reason. Seeds: tests/fuzz/corpus/http_answer/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/load_lib.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  using State = vigil::bench::HttpAnswerReader::State;
  vigil::bench::HttpAnswerReader r;
  size_t fed = 0;
  bool failed = false;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const std::string_view chunk = bytes.substr(at, piece);
    fed += chunk.size();
    State s = r.Feed(chunk);
    while (s == State::kDone) {
      if (failed || r.body().size() > fed || r.status() < 100 || r.status() > 999) {
        __builtin_trap();
      }
      s = r.Next();
    }
    if (s == State::kError) {
      if (r.error().empty()) __builtin_trap();
      failed = true;
    }
  }
  std::string_view message;
  std::string why;
  if (vigil::bench::UnframeGrpcMessage(bytes, &message, &why)) {
    if (bytes.size() < 5 || message.data() != bytes.data() + 5 ||
        message.size() != bytes.size() - 5) {
      __builtin_trap();
    }
  } else if (why.empty()) {
    __builtin_trap();
  }
  return 0;
}
