// libFuzzer target for the decision service's request decoders (outside input: HTTP bodies and
// gRPC messages, src/api/codec.h). The first byte picks the request type and the decoder (JSON
// or protobuf binary); any bytes must give a request or an error that says what was wrong, and
// a request that passes validation must survive ToJson -> ParseJson with the same JSON.
// Differential checks of the score messages' fast JSON paths (score_json.cc): whatever the
// fast reader accepts, protobuf's reader accepts as the same message; whatever the fast writer
// prints (the bytes read as a binary ScoreResponse / ScoreBatchResponse), protobuf's printer
// prints byte for byte.
// Seeds: tests/fuzz/corpus/api/.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/codec.h"

namespace {

using vigil::api::ParseJson;
using vigil::api::ToJson;
namespace v1 = vigil::v1;

template <typename Msg>
void CheckFastReader(std::string_view input) {
  Msg fast, generic;
  if (!vigil::api::ParseScoreJsonFast(input, &fast)) return;
  if (!vigil::api::ParseJsonGeneric(input, &generic).ok()) __builtin_trap();
  if (fast.SerializeAsString() != generic.SerializeAsString()) __builtin_trap();
}

template <typename Msg>
void CheckFastWriter(std::string_view input) {
  Msg msg;
  if (!msg.ParseFromArray(input.data(), static_cast<int>(input.size()))) return;
  std::string fast;
  if (!vigil::api::ToScoreJsonFast(msg, &fast)) return;
  if (fast != vigil::api::ToJsonGeneric(msg)) __builtin_trap();
}

template <typename Msg>
void Check(std::string_view input, bool binary,
           vigil::core::Status (*validate)(const Msg&)) {
  if (!binary) CheckFastReader<Msg>(input);
  Msg msg;
  if (binary) {
    if (!msg.ParseFromArray(input.data(), static_cast<int>(input.size()))) return;
  } else {
    vigil::core::Status s = ParseJson(input, &msg);
    if (!s.ok()) {
      if (s.message().empty()) __builtin_trap();
      return;
    }
  }
  vigil::core::Status valid = validate(msg);
  if (!valid.ok()) {
    if (valid.message().empty()) __builtin_trap();
    return;
  }
  const std::string once = ToJson(msg);
  Msg again;
  if (!ParseJson(once, &again).ok()) __builtin_trap();
  if (ToJson(again) != once) __builtin_trap();
}

vigil::core::Status ValidateScore(const v1::ScoreRequest& r) {
  return vigil::api::ValidateScoreRequest(r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool binary = (selector & 0x80) != 0;
  if (binary) {
    CheckFastWriter<v1::ScoreResponse>(input);
    CheckFastWriter<v1::ScoreBatchResponse>(input);
  }
  switch (selector % 7) {
    case 0: Check<v1::ScoreRequest>(input, binary, ValidateScore); break;
    case 1: Check<v1::ScoreBatchRequest>(input, binary, vigil::api::ValidateScoreBatchRequest); break;
    case 2: Check<v1::DecideRequest>(input, binary, vigil::api::ValidateDecideRequest); break;
    case 3: Check<v1::EnforceRequest>(input, binary, vigil::api::ValidateEnforceRequest); break;
    case 4: Check<v1::RollbackRequest>(input, binary, vigil::api::ValidateRollbackRequest); break;
    case 5: Check<v1::WatchRequest>(input, binary, vigil::api::ValidateWatchRequest); break;
    default: Check<v1::Ack>(input, binary, vigil::api::ValidateAck); break;
  }
  return 0;
}
