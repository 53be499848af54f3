// libFuzzer target for api_load's reader of HTTP/1.1 answers (bench/api/load_lib.h): the bytes
// a keep-alive connection delivers, fed in pieces whose sizes the first byte picks. Any bytes
// must give answers, "more", or an error with a reason; never a crash, a body longer than the
// bytes fed, or an answer after an error. Seeds: tests/fuzz/corpus/http_answer/.

#include <cstddef>
#include <cstdint>
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
  return 0;
}
