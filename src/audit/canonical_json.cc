#include "audit/canonical_json.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "core/utf8.h"

namespace vigil::audit {
namespace {

using core::Utf8SequenceLength;

// True when every byte of `s` stands for itself inside a JSON string (printable ASCII other
// than the quote and the backslash): the common case, copied without escaping.
bool IsPlain(std::string_view s) {
  // Eight bytes at a time: a byte below 0x20 or equal to '"' or '\\' sets its top bit in
  // `special` (the "has a byte less than n" / "has a zero byte" bit tricks, exact for n <= 128);
  // a byte >= 0x80 has its own top bit set.
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  auto has_zero = [&](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  auto plain = [&](uint64_t w) {
    const uint64_t special = ((w - kOnes * 0x20) & ~w & kHigh) | has_zero(w ^ (kOnes * '"')) |
                             has_zero(w ^ (kOnes * '\\'));
    return ((w & kHigh) | special) == 0;
  };
  const size_t n = s.size();
  if (n < 8) {
    for (const char ch : s) {
      const auto c = static_cast<uint8_t>(ch);
      if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
    }
    return true;
  }
  uint64_t w;
  for (size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&w, s.data() + i, 8);
    if (!plain(w)) return false;
  }
  std::memcpy(&w, s.data() + n - 8, 8);  // the last 8 bytes (overlapping the loop's last word)
  return plain(w);
}

// Appends the escaped body of a string that is well-formed UTF-8; false (with *out holding a
// partial body) when it is not.
bool AppendEscapedValid(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;  // start of the bytes not yet copied
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(s, i);
      if (n == 0) return false;
      i += n;
      continue;
    }
    out->append(s.data() + run, i - run);
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t len = 2;
    switch (c) {
      case '\b':
        esc[1] = 'b';
        break;
      case '\t':
        esc[1] = 't';
        break;
      case '\n':
        esc[1] = 'n';
        break;
      case '\f':
        esc[1] = 'f';
        break;
      case '\r':
        esc[1] = 'r';
        break;
      case '"':
        esc[1] = '"';
        break;
      case '\\':
        esc[1] = '\\';
        break;
      default:
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = kHex[c >> 4];
        esc[5] = kHex[c & 15];
        len = 6;
    }
    out->append(esc, len);
    run = ++i;
  }
  out->append(s.data() + run, s.size() - run);
  return true;
}

// An integer in decimal, as dump() prints it.
class IntegerText {
 public:
  template <typename T>
  explicit IntegerText(T v) : end_(std::to_chars(buf_, buf_ + sizeof(buf_), v).ptr) {}
  std::string_view view() const { return {buf_, static_cast<size_t>(end_ - buf_)}; }

 private:
  char buf_[24];
  char* end_;
};

}  // namespace

void AppendCanonicalString(std::string_view s, std::string* out) {
  const size_t start = out->size();
  out->push_back('"');
  if (IsPlain(s)) {
    out->append(s);
    out->push_back('"');
    return;
  }
  if (AppendEscapedValid(s, out)) {
    out->push_back('"');
    return;
  }
  // Invalid UTF-8 (rare: payload strings come from the kernel or files): nlohmann's replacement
  // rules decide how many bytes each U+FFFD stands for, so let it write this one string.
  out->resize(start);
  out->append(nlohmann::json(std::string(s))
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void AppendCanonicalNumber(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[64];
  char* end = nlohmann::detail::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(end - buf));
}

void AppendCanonicalNumber(int64_t v, std::string* out) { out->append(IntegerText(v).view()); }

void AppendCanonicalNumber(uint64_t v, std::string* out) { out->append(IntegerText(v).view()); }

void AppendCanonicalJson(const nlohmann::json& value, std::string* out) {
  using V = nlohmann::json::value_t;
  switch (value.type()) {
    case V::null:
      out->append("null");
      return;
    case V::boolean:
      out->append(value.get<bool>() ? "true" : "false");
      return;
    case V::number_integer:
      AppendCanonicalNumber(value.get<int64_t>(), out);
      return;
    case V::number_unsigned:
      AppendCanonicalNumber(value.get<uint64_t>(), out);
      return;
    case V::number_float:
      AppendCanonicalNumber(value.get<double>(), out);
      return;
    case V::string:
      AppendCanonicalString(value.get_ref<const nlohmann::json::string_t&>(), out);
      return;
    case V::array: {
      out->push_back('[');
      bool first = true;
      for (const nlohmann::json& item : value.get_ref<const nlohmann::json::array_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        AppendCanonicalJson(item, out);
      }
      out->push_back(']');
      return;
    }
    case V::object: {
      // object_t is a std::map<std::string, ...>: iteration is already in bytewise key order.
      out->push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.get_ref<const nlohmann::json::object_t&>()) {
        if (!first) out->push_back(',');
        first = false;
        AppendCanonicalString(key, out);
        out->push_back(':');
        AppendCanonicalJson(item, out);
      }
      out->push_back('}');
      return;
    }
    case V::binary:
    case V::discarded:
      break;
  }
  // Kinds JSON text has no syntax for: whatever dump() makes of them.
  out->append(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void CanonicalWriter::Flush() {
  out_->append(buf_, used_);
  used_ = 0;
}

void CanonicalWriter::Put(std::string_view bytes) {
  if (bytes.size() > kBufferSize - used_) {
    Flush();
    if (bytes.size() >= kBufferSize) {
      out_->append(bytes);
      return;
    }
  }
  std::memcpy(buf_ + used_, bytes.data(), bytes.size());
  used_ += bytes.size();
}

void CanonicalWriter::PutQuoted(std::string_view s) {
  if (IsPlain(s)) {
    Put('"');
    Put(s);
    Put('"');
    return;
  }
  thread_local std::string escaped;  // escapes, non-ASCII or invalid UTF-8: rare
  escaped.clear();
  AppendCanonicalString(s, &escaped);
  Put(escaped);
}

void CanonicalWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (depth_ == 0) return;
  const uint64_t bit = uint64_t{1} << (depth_ & 63);
  if ((has_member_ & bit) != 0) Put(',');
  has_member_ |= bit;
}

void CanonicalWriter::Open(char c) {
  BeforeValue();
  Put(c);
  ++depth_;
  has_member_ &= ~(uint64_t{1} << (depth_ & 63));
}

void CanonicalWriter::Close(char c) {
  Put(c);
  --depth_;
  AfterValue();
}

void CanonicalWriter::Key(std::string_view key) {
  BeforeValue();
  PutQuoted(key);
  Put(':');
  after_key_ = true;
}

void CanonicalWriter::String(std::string_view s) {
  BeforeValue();
  PutQuoted(s);
  AfterValue();
}

void CanonicalWriter::Bool(bool b) {
  BeforeValue();
  Put(b ? std::string_view("true") : std::string_view("false"));
  AfterValue();
}

void CanonicalWriter::Double(double v) {
  BeforeValue();
  if (!std::isfinite(v)) {
    Put("null");
  } else {
    char num[64];
    char* end = nlohmann::detail::to_chars(num, num + sizeof(num), v);
    Put(std::string_view(num, static_cast<size_t>(end - num)));
  }
  AfterValue();
}

void CanonicalWriter::Int(int64_t v) {
  BeforeValue();
  IntegerText text(v);
  Put(text.view());
  AfterValue();
}

void CanonicalWriter::Uint(uint64_t v) {
  BeforeValue();
  IntegerText text(v);
  Put(text.view());
  AfterValue();
}

void CanonicalWriter::Null() {
  BeforeValue();
  Put("null");
  AfterValue();
}

// The members in bytewise key order, the same fields and JSON types as VerdictPayload.
void WriteVerdictPayload(const core::Verdict& v, CanonicalWriter* w) {
  w->BeginObject();
  w->Key("anomalous");
  w->Bool(v.anomalous);
  w->Key("events");
  w->Uint(v.events);
  w->Key("explanation");
  w->BeginArray();
  for (const core::Evidence& e : v.explanation) {
    w->BeginObject();
    w->Key("weight");
    w->Double(e.weight);
    w->Key("what");
    w->String(e.what);
    w->EndObject();
  }
  w->EndArray();
  w->Key("host");
  w->String(v.host);
  w->Key("model");
  w->BeginObject();
  w->Key("name");
  w->String(v.model_name);
  w->Key("version");
  w->String(v.model_version);
  w->EndObject();
  w->Key("pid");
  w->Uint(v.pid);
  w->Key("score");
  w->Double(v.score);
  w->Key("stream");
  w->String(v.stream);
  w->Key("subject");
  w->String(v.subject);
  w->Key("time_ns");
  w->Int(v.time_ns);
  w->Key("uid");
  w->Uint(v.uid);
  w->EndObject();
}

void WriteDecisionPayload(const core::Decision& d, std::string_view mode, CanonicalWriter* w) {
  WriteDecisionPayload(d, mode, {}, w);
}

void WriteDecisionPayload(const core::Decision& d, std::string_view mode,
                          std::span<const ExtraMember> extra, CanonicalWriter* w) {
  size_t next = 0;
  // The extra members that sort before `key` (all that are left when `key` is empty).
  auto extras_before = [&](std::string_view key) {
    while (next < extra.size() && (key.empty() || extra[next].key < key)) {
      w->Key(extra[next].key);
      extra[next].value(w);
      ++next;
    }
  };
  w->BeginObject();
  extras_before("action");
  w->Key("action");
  w->String(core::ActionName(d.action));
  extras_before("enforced");
  w->Key("enforced");
  w->Bool(d.enforced);
  extras_before("mode");
  w->Key("mode");
  w->String(mode);
  extras_before("reason");
  w->Key("reason");
  w->String(d.reason);
  extras_before("rule");
  w->Key("rule");
  w->String(d.rule);
  extras_before("verdict");
  w->Key("verdict");
  WriteVerdictPayload(d.verdict, w);
  extras_before("");
  w->EndObject();
}

}  // namespace vigil::audit
