#pragma once

// Vigil's canonical JSON (audit_log.h CanonicalJson: nlohmann::json::dump() without indentation,
// keys sorted bytewise, no whitespace, shortest round-trip numbers, UTF-8 kept, invalid UTF-8
// replaced by U+FFFD) written straight into a byte buffer, without dump()'s temporary string and
// per-string scratch buffer, and a streaming writer for the payloads the product writes on its
// hot path (decisions about verdicts), which renders them from the value types without building
// a nlohmann::json tree at all. Both give exactly the bytes CanonicalJson gives (a test compares
// them on many values); the verifier refuses anything else.

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "core/event.h"

namespace vigil::audit {

// Appends the canonical form of `value` to *out (CanonicalJson(value) == the appended bytes).
void AppendCanonicalJson(const nlohmann::json& value, std::string* out);

// Appends the canonical form of one JSON scalar to *out.
void AppendCanonicalString(std::string_view s, std::string* out);  // with the quotes
void AppendCanonicalNumber(double v, std::string* out);            // not finite: null
void AppendCanonicalNumber(int64_t v, std::string* out);
void AppendCanonicalNumber(uint64_t v, std::string* out);

// Writes one JSON value in canonical form into a buffer, member by member. The caller writes the
// keys of each object in bytewise-sorted order, each once (the writer does not sort); commas and
// nesting are the writer's. Used for payloads whose shape is fixed in code.
class CanonicalWriter {
 public:
  explicit CanonicalWriter(std::string* out) : out_(out) {}
  ~CanonicalWriter() { Flush(); }
  CanonicalWriter(const CanonicalWriter&) = delete;
  CanonicalWriter& operator=(const CanonicalWriter&) = delete;

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }
  // The next member's key (inside an object only).
  void Key(std::string_view key);
  void String(std::string_view s);
  void Bool(bool b);
  void Double(double v);
  void Int(int64_t v);
  void Uint(uint64_t v);
  void Null();

  // Bytes are gathered in a small buffer and appended to *out when the top-level value ends,
  // when the buffer fills, on Flush() and on destruction.
  void Flush();

 private:
  static constexpr size_t kBufferSize = 1024;

  void BeforeValue();
  void AfterValue() {
    if (depth_ == 0) Flush();
  }
  void Open(char c);
  void Close(char c);
  void Put(char c) {
    if (used_ == kBufferSize) Flush();
    buf_[used_++] = c;
  }
  void Put(std::string_view bytes);
  void PutQuoted(std::string_view s);

  std::string* out_;
  // One bit per nesting level (up to 64): the container at that level already has a member.
  uint64_t has_member_ = 0;
  int depth_ = 0;
  bool after_key_ = false;
  size_t used_ = 0;
  char buf_[kBufferSize];
};

// The record payloads of payloads.h, written straight into the writer:
// WriteVerdictPayload(v) gives CanonicalJson(VerdictPayload(v)), WriteDecisionPayload(d, mode)
// gives CanonicalJson(DecisionPayload(d, mode)).
void WriteVerdictPayload(const core::Verdict& v, CanonicalWriter* w);
void WriteDecisionPayload(const core::Decision& d, std::string_view mode, CanonicalWriter* w);

// A member a writer adds to a payload of fixed shape: its key and what writes its value.
struct ExtraMember {
  std::string_view key;
  std::function<void(CanonicalWriter*)> value;
};
// The decision payload with `extra` members merged in at their places (they must be sorted by key,
// bytewise, none of them a key of the decision payload itself): CanonicalJson of
// DecisionPayload(d, mode) with each extra member set. For decision records that say more (the
// gates' call, the gateway's Modbus write).
void WriteDecisionPayload(const core::Decision& d, std::string_view mode,
                          std::span<const ExtraMember> extra, CanonicalWriter* w);

}  // namespace vigil::audit
