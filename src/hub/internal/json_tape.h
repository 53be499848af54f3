#pragma once

// A validating JSON reader for the hub's ingest path (hub/ingest_json.cc): one pass over the
// text checks it and records every value as a token on a flat tape, which the finding parser
// then walks by index. No tree of nodes and no copies: strings stay spans of the text (decoded
// only when they hold escapes), numbers are converted once, and one tape per thread is reused
// from message to message.
//
// What it accepts is what nlohmann::json::parse accepts (the hub's other parsers; the
// differential test tests/unit/hub/ingest_json_test.cc and the fuzz target ingest_json_fuzz
// hold the two to the same answers): RFC 8259 with a leading UTF-8 byte-order mark skipped and
// a NUL byte after the value taken as the end of the text (nlohmann's quirk, kept),
// strings of well-formed UTF-8 (no surrogates or overlong forms) without raw control
// characters, \u escapes with surrogates only in valid pairs, any nesting depth (no recursion),
// and numbers as nlohmann types them: without fraction or exponent, an unsigned (no '-') or
// signed integer when it fits 64 bits, else a double; a number whose double is not finite
// (1e400) makes the whole text invalid.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::hub::internal {

enum class JsonKind : uint8_t {
  kNull,
  kFalse,
  kTrue,
  kString,
  kUnsigned,
  kInteger,
  kFloat,
  kObject,
  kArray
};

struct JsonToken {
  JsonKind kind = JsonKind::kNull;
  bool escaped = false;  // strings: hold at least one backslash escape
  uint32_t begin = 0;    // strings: first byte after the opening quote; others: first byte
  uint32_t end = 0;      // strings: the closing quote; others: one past the last byte
  uint32_t next = 0;     // the index of the token after this value and everything inside it
  uint32_t count = 0;    // objects: members; arrays: elements
  union {
    uint64_t u;
    int64_t i;
    double d;
  } num{0};
};

// The tape of one text. An object's token is followed by its members, each a key token (a
// string) and then its value's tokens; an array's by its elements' tokens.
class JsonTape {
 public:
  // Checks `text` (at most 4 GiB - 1 bytes) and fills the tape; false when it is not one JSON
  // value. The text must outlive every use of the tokens.
  bool Parse(std::string_view text);

  // Frees the tape's memory when a large text left it over `keep_tokens` tokens.
  void Trim(size_t keep_tokens);

  const JsonToken& operator[](uint32_t i) const { return tokens_[i]; }
  std::string_view text() const { return text_; }

  // A string token's value, decoded (a span of the text when it holds no escape).
  std::string String(uint32_t i) const;
  // Whether a string token decodes to `s`.
  bool StringIs(uint32_t i, std::string_view s) const;
  // A string token's decoded length in bytes.
  size_t StringSize(uint32_t i) const;

  // For object token `obj`: the value token of the last member named names[n] (nlohmann keeps
  // the last of duplicate keys), or kAbsent, into at[n].
  static constexpr uint32_t kAbsent = UINT32_MAX;
  void Members(uint32_t obj, const std::string_view* names, uint32_t* at, size_t n) const;

 private:
  bool ParseString(size_t* pos, bool* escaped) const;
  bool ParseNumber(size_t* pos, JsonToken* tok) const;

  std::string_view text_;
  std::vector<JsonToken> tokens_;
  std::vector<uint32_t> open_;  // the containers not yet closed
};

}  // namespace vigil::hub::internal
