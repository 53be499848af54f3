// libFuzzer target for the audit log reader (outside input: `vigil audit verify|show` on a
// directory anyone with write access may have edited, and the writer's crash recovery) and for
// the public key files `vigil audit verify --key` reads. The first byte picks the mode:
//  0  the bytes as a whole segment, fed as the last one and (on a second verifier) as a middle
//     one followed by a copy: the framing, header and torn-tail paths;
//  1  the bytes cut into records (2-byte type, 1-byte sequence skew, payload up to a 0xFF byte)
//     framed with correct header checks and hashes: SHA-256 keeps random mutations from ever
//     reaching the payload and checkpoint parsers through mode 0, so they are fuzzed here;
//  2  the bytes as a public key file.
// Nothing may crash, hang or throw; a reported problem must name a reason.
// Seeds: tests/fuzz/corpus/audit/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/internal/format.h"
#include "audit/signer.h"
#include "audit/verify.h"

namespace {

using namespace vigil::audit;  // NOLINT(google-build-using-namespace)

void Check(const VerifyReport& r) {
  if (r.problem.has_value() && r.problem->detail.empty()) __builtin_trap();
  if (r.records > 0 && r.last_seq < r.first_seq) __builtin_trap();
}

void Feed(std::string_view segment) {
  const std::string name = internal::SegmentFileName(1);
  {
    LogVerifier v({});
    v.FeedSegment(name, segment, true);
    Check(v.report());
  }
  VerifyOptions anywhere;
  anywhere.start_anywhere = true;
  LogVerifier v(anywhere, [](const RecordView& rv) { return rv.payload.size() < (1u << 20); });
  if (v.FeedSegment(name, segment, false)) v.FeedSegment(internal::SegmentFileName(2), segment, true);
  Check(v.report());
}

std::string Framed(std::string_view in) {
  std::string out = internal::EncodeSegmentHeader({internal::kFormatVersion, 1, 0});
  internal::Hash prev{};
  uint64_t seq = 1;
  while (in.size() >= 3) {
    internal::RecordFields f;
    f.type = static_cast<uint16_t>(static_cast<uint8_t>(in[0]) % 13);
    f.seq = seq + (static_cast<uint8_t>(in[1]) < 8 ? static_cast<uint8_t>(in[1]) : 0);
    f.time_ns = static_cast<int64_t>(seq) * 1000;
    f.prev_hash = prev;
    f.flags = static_cast<uint8_t>(in[2]) == 0xEE ? 1 : 0;
    in.remove_prefix(3);
    const size_t end = std::min(in.find('\xFF'), in.size());
    prev = internal::AppendRecord(f, in.substr(0, end), &out);
    in.remove_prefix(std::min(end + 1, in.size()));
    ++seq;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      Feed(in);
      break;
    case 1:
      Feed(Framed(in));
      break;
    default: {
      auto k = ParsePublicKey(in, "fuzz.pub");
      if (!k.has_value() && k.error().message().empty()) __builtin_trap();
      break;
    }
  }
  return 0;
}
