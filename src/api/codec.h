#pragma once

// The decision service's messages (proto/vigil/v1/api.proto) as JSON, and the checks every
// request passes before any service code sees it, whichever transport carried it.
//
// JSON follows protobuf's canonical JSON mapping of the same messages (field names as in the
// .proto, lowerCamelCase also accepted on input; 64-bit integers as strings); unknown fields are
// refused. Nothing here throws: every bad input is a kInvalidArgument naming the field or the
// JSON position and the reason.

#include <string>
#include <string_view>

#include "core/status.h"
#include "vigil/v1/api.pb.h"

namespace vigil::api {

// The one schema version of this API; requests with another or none are refused.
inline constexpr std::string_view kSchemaVersion = "vigil.api/v1";

// Bounds that keep one request small (a larger one is refused, not truncated).
inline constexpr size_t kMaxBodyBytes = size_t{1} << 20;
inline constexpr int kMaxSyscalls = 65536;
inline constexpr int kMaxValues = 4096;
inline constexpr int kMaxBatchItems = 1024;
inline constexpr size_t kMaxStringBytes = 4096;
inline constexpr uint32_t kMaxDeadlineMs = 60'000;

// Parses `json` into `out` (cleared first). Errors: "request body: <position and reason>".
core::Status ParseJson(std::string_view json, google::protobuf::Message* out);
// The message as one line of JSON, proto field names, every field present (defaults included).
std::string ToJson(const google::protobuf::Message& message);

// ParseJson and ToJson take a fast path for the score messages (score_json.cc), the HTTP API's
// hot path; the rest goes through protobuf's JSON utilities, as these two always do (for tests
// and the differential fuzz target).
core::Status ParseJsonGeneric(std::string_view json, google::protobuf::Message* out);
std::string ToJsonGeneric(const google::protobuf::Message& message);
// A ScoreRequest or ScoreBatchRequest in the reader's strict subset (ASCII strings without
// escapes, integers, the proto field names, each once, no `values`): true and `out` filled,
// exactly as the generic reader would. Otherwise false (`out` then holds a partial message; the
// caller clears it): the generic reader decides, and words the error.
bool ParseScoreJsonFast(std::string_view json, google::protobuf::Message* out);
// A ScoreResponse or ScoreBatchResponse printed as the generic printer prints it; false (and
// `out` empty) for other messages, non-ASCII strings and numbers that are not finite (the
// generic printer then prints them).
bool ToScoreJsonFast(const google::protobuf::Message& message, std::string* out);

// Refuses a missing or unknown schema_version: "schema_version: missing (this server speaks
// vigil.api/v1)" / "schema_version: \"x\" is not supported (this server speaks vigil.api/v1)".
core::Status CheckSchemaVersion(std::string_view version);

// Full checks of each request (schema version, sizes, names, ranges). A ScoreRequest inside a
// batch or a decide request may leave its own schema_version empty.
core::Status ValidateScoreRequest(const v1::ScoreRequest& r, bool nested = false);
core::Status ValidateScoreBatchRequest(const v1::ScoreBatchRequest& r);
core::Status ValidateDecideRequest(const v1::DecideRequest& r);
core::Status ValidateEnforceRequest(const v1::EnforceRequest& r);
core::Status ValidateRollbackRequest(const v1::RollbackRequest& r);
core::Status ValidateWatchRequest(const v1::WatchRequest& r);
core::Status ValidateAck(const v1::Ack& r);

// Actions an enforcement order may carry (docs/api.md).
bool IsEnforcementAction(std::string_view action);

}  // namespace vigil::api
