#include "hub/internal/json_tape.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/utf8.h"

namespace vigil::hub::internal {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four hex digits at s[0..3] (the caller checked there are four), or -1.
int32_t Hex4(const char* s) {
  int32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    const int d = HexDigit(s[k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the escapes of a string the tape has checked (s: between the quotes).
std::string Decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '\\') {
      out.push_back(s[k]);
      continue;
    }
    const char e = s[++k];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp = static_cast<uint32_t>(Hex4(s.data() + k + 1));
        k += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // checked: a low surrogate follows
          const uint32_t lo = static_cast<uint32_t>(Hex4(s.data() + k + 3));
          k += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        AppendUtf8(cp, &out);
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
  return out;
}

// The bytes of `w` (eight of the text, the first in the lowest byte) a string's scan must stop
// at: '"', '\\', below 0x20, 0x80 and above. Each has its byte's top bit set in the result, and
// the lowest set bit is exact (the "has a zero byte" tests can only mark bytes above a true one
// falsely): a byte b below 0x20 borrows in b - 0x20; b equal to x is zero in b ^ x.
inline uint64_t StopBytes(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  auto zero = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  return (w & kHigh) | ((w - kOnes * 0x20) & ~w & kHigh) | zero(w ^ (kOnes * '"')) |
         zero(w ^ (kOnes * '\\'));
}
static_assert(std::endian::native == std::endian::little, "StopBytes reads words little-endian");

}  // namespace

bool JsonTape::ParseString(size_t* pos, bool* escaped) const {
  const auto* s = reinterpret_cast<const unsigned char*>(text_.data());
  const size_t n = text_.size();
  size_t p = *pos;  // after the opening quote
  while (p < n) {
    // Eight bytes at a time up to the first one that is not plain ASCII text (most of a
    // finding's text is), which is handled below.
    while (p + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + p, 8);
      if (const uint64_t stops = StopBytes(w); stops != 0) {
        p += static_cast<size_t>(std::countr_zero(stops)) / 8;
        break;
      }
      p += 8;
    }
    if (p >= n) break;
    const unsigned char c = s[p];
    if (c == '"') {
      *pos = p;
      return true;
    }
    if (c < 0x20) return false;
    if (c < 0x80 && c != '\\') {
      ++p;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = core::Utf8SequenceLength(text_, p);
      if (len == 0) return false;
      p += len;
      continue;
    }
    // An escape.
    *escaped = true;
    if (p + 1 >= n) return false;
    const char e = static_cast<char>(s[p + 1]);
    if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
        e == 't') {
      p += 2;
      continue;
    }
    if (e != 'u' || p + 6 > n) return false;
    const int32_t cp = Hex4(text_.data() + p + 2);
    if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
    p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (p + 6 > n || s[p] != '\\' || s[p + 1] != 'u') return false;
      const int32_t lo = Hex4(text_.data() + p + 2);
      if (lo < 0xDC00 || lo > 0xDFFF) return false;
      p += 6;
    }
  }
  return false;
}

bool JsonTape::ParseNumber(size_t* pos, JsonToken* tok) const {
  const char* s = text_.data();
  const size_t n = text_.size();
  size_t p = *pos;
  const bool negative = s[p] == '-';
  if (negative) ++p;
  auto digit = [&](size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
  if (!digit(p)) return false;
  if (s[p] == '0') {
    ++p;
  } else {
    while (digit(p)) ++p;
  }
  bool is_float = false;
  if (p < n && s[p] == '.') {
    ++p;
    if (!digit(p)) return false;
    while (digit(p)) ++p;
    is_float = true;
  }
  if (p < n && (s[p] == 'e' || s[p] == 'E')) {
    ++p;
    if (p < n && (s[p] == '+' || s[p] == '-')) ++p;
    if (!digit(p)) return false;
    while (digit(p)) ++p;
    is_float = true;
  }
  const char* first = s + *pos;
  const char* last = s + p;
  *pos = p;
  if (!is_float) {
    // As nlohmann: a 64-bit integer when it fits (unsigned without '-'), else a double.
    uint64_t u = 0;
    bool fits = true;
    for (const char* c = first + (negative ? 1 : 0); c < last && fits; ++c) {
      const uint64_t d = static_cast<uint64_t>(*c - '0');
      if (u > (UINT64_MAX - d) / 10) fits = false;
      u = u * 10 + d;
    }
    if (fits && !negative) {
      tok->kind = JsonKind::kUnsigned;
      tok->num.u = u;
      return true;
    }
    if (fits && u <= uint64_t{1} << 63) {
      tok->kind = JsonKind::kInteger;
      tok->num.i = u == uint64_t{1} << 63 ? INT64_MIN : -static_cast<int64_t>(u);
      return true;
    }
  }
  tok->kind = JsonKind::kFloat;
  double d = 0;
  const auto r = std::from_chars(first, last, d);
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow (not valid, as nlohmann says) or underflow (strtod's nearest, 0 or subnormal).
    const std::string copy(first, last);
    d = std::strtod(copy.c_str(), nullptr);
  } else if (r.ec != std::errc() || r.ptr != last) {
    return false;
  }
  if (!std::isfinite(d)) return false;
  tok->num.d = d;
  return true;
}

bool JsonTape::Parse(std::string_view text) {
  text_ = text;
  tokens_.clear();
  open_.clear();
  if (text.size() >= UINT32_MAX) return false;
  const size_t n = text.size();
  size_t p = 0;
  if (n >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) p = 3;  // a byte-order mark
  auto skip = [&] {
    while (p < n && IsSpace(text[p])) ++p;
  };
  // Reads one value at p: a scalar whole, a container's opening (its contents follow).
  // Returns false on a syntax error.
  for (;;) {
    skip();
    if (p >= n) return false;
    JsonToken tok;
    tok.begin = static_cast<uint32_t>(p);
    const char c = text[p];
    bool opened = false;
    if (c == '{' || c == '[') {
      tok.kind = c == '{' ? JsonKind::kObject : JsonKind::kArray;
      ++p;
      opened = true;
    } else if (c == '"') {
      tok.kind = JsonKind::kString;
      tok.begin = static_cast<uint32_t>(++p);
      bool escaped = false;
      if (!ParseString(&p, &escaped)) return false;
      tok.escaped = escaped;
      tok.end = static_cast<uint32_t>(p++);
    } else if (c == 't' || c == 'f' || c == 'n') {
      const std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      if (text.compare(p, word.size(), word) != 0) return false;
      tok.kind = c == 't' ? JsonKind::kTrue : c == 'f' ? JsonKind::kFalse : JsonKind::kNull;
      p += word.size();
      tok.end = static_cast<uint32_t>(p);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      if (!ParseNumber(&p, &tok)) return false;
      tok.end = static_cast<uint32_t>(p);
    } else {
      return false;
    }
    const uint32_t index = static_cast<uint32_t>(tokens_.size());
    tok.next = index + 1;
    if (!open_.empty()) ++tokens_[open_.back()].count;
    tokens_.push_back(tok);
    bool expect_key = false;
    if (opened) {
      skip();
      const char close = tok.kind == JsonKind::kObject ? '}' : ']';
      if (p < n && text[p] == close) {
        ++p;
        tokens_[index].end = static_cast<uint32_t>(p);
      } else {
        open_.push_back(index);
        expect_key = tok.kind == JsonKind::kObject;
      }
    }
    // After a value (or inside a just-opened container): close containers, or go on with the
    // next member or element.
    while (!expect_key && !(opened && !open_.empty() && open_.back() == index)) {
      if (open_.empty()) {
        skip();
        return p == n || text[p] == '\0';  // as nlohmann, a NUL byte ends the input
      }
      skip();
      if (p >= n) return false;
      JsonToken& top = tokens_[open_.back()];
      const char close = top.kind == JsonKind::kObject ? '}' : ']';
      if (text[p] == ',') {
        ++p;
        expect_key = top.kind == JsonKind::kObject;
        break;
      }
      if (text[p] != close) return false;
      ++p;
      top.end = static_cast<uint32_t>(p);
      top.next = static_cast<uint32_t>(tokens_.size());
      open_.pop_back();
    }
    if (expect_key) {
      skip();
      if (p >= n || text[p] != '"') return false;
      JsonToken key;
      key.kind = JsonKind::kString;
      key.begin = static_cast<uint32_t>(++p);
      bool escaped = false;
      if (!ParseString(&p, &escaped)) return false;
      key.escaped = escaped;
      key.end = static_cast<uint32_t>(p++);
      key.next = static_cast<uint32_t>(tokens_.size() + 1);
      tokens_.push_back(key);
      skip();
      if (p >= n || text[p] != ':') return false;
      ++p;
    }
  }
}

void JsonTape::Trim(size_t keep_tokens) {
  if (tokens_.capacity() > keep_tokens) std::vector<JsonToken>().swap(tokens_);
  if (open_.capacity() > keep_tokens) std::vector<uint32_t>().swap(open_);
}

std::string JsonTape::String(uint32_t i) const {
  const JsonToken& t = tokens_[i];
  const std::string_view s = text_.substr(t.begin, t.end - t.begin);
  return t.escaped ? Decode(s) : std::string(s);
}

bool JsonTape::StringIs(uint32_t i, std::string_view s) const {
  const JsonToken& t = tokens_[i];
  if (!t.escaped) return text_.substr(t.begin, t.end - t.begin) == s;
  return Decode(text_.substr(t.begin, t.end - t.begin)) == s;
}

size_t JsonTape::StringSize(uint32_t i) const {
  const JsonToken& t = tokens_[i];
  if (!t.escaped) return t.end - t.begin;
  return Decode(text_.substr(t.begin, t.end - t.begin)).size();
}

void JsonTape::Members(uint32_t obj, const std::string_view* names, uint32_t* at, size_t n) const {
  for (size_t k = 0; k < n; ++k) at[k] = kAbsent;
  const uint32_t end = tokens_[obj].next;
  std::string decoded;
  for (uint32_t key = obj + 1; key < end;) {
    const uint32_t value = key + 1;
    const JsonToken& t = tokens_[key];
    std::string_view name = text_.substr(t.begin, t.end - t.begin);
    if (t.escaped) name = decoded = Decode(name);
    for (size_t k = 0; k < n; ++k) {
      if (name == names[k]) {
        at[k] = value;
        break;
      }
    }
    key = tokens_[value].next;
  }
}

}  // namespace vigil::hub::internal
