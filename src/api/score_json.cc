// Fast JSON paths for the score messages (codec.h): a strict reader of the common shapes of
// ScoreRequest / ScoreBatchRequest and a writer of ScoreResponse / ScoreBatchResponse. protobuf's
// JSON utilities go through a type resolver and a binary round trip (~200k instructions to read
// a 64-call request, ~170k to print its answer: docs/benchmarks.md); these do the same work in
// a few thousand. The reader only ever accepts: anything outside its subset (escapes, non-ASCII,
// camelCase names, fractions, null, duplicates, `values`, ...) returns false and the caller
// uses protobuf's reader, which gives the authoritative answer or error. The writer prints what
// protobuf's printer prints (same field order, defaults included, the same number format) and
// declines non-ASCII strings and numbers that are not finite.

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "api/codec.h"

namespace vigil::api {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  void Space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool Eat(char c) {
    Space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    Space();
    return p_ == end_;
  }
  // A string of printable ASCII without escapes (else false: the generic reader decides).
  bool String(std::string_view* out) {
    if (!Eat('"')) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      const auto c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }
  // A JSON integer (no fraction, exponent or leading zero) within [lo, hi].
  bool Integer(int64_t lo, int64_t hi, int64_t* out) {
    Space();
    bool negative = false;
    if (p_ < end_ && *p_ == '-') {
      negative = true;
      ++p_;
    }
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9') return false;
    int64_t v = 0;
    int digits = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (++digits > 12) return false;  // beyond any 32-bit value
      v = v * 10 + (*p_ - '0');
      ++p_;
    }
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    if (negative) {
      if (v == 0) return false;  // "-0": let the generic reader decide
      v = -v;
    }
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

// The members of an object, after its '{': `member(key)` reads the value of a known key and
// returns its bit (distinct per key), or 0 to decline (an unknown key, a bad value). A key
// given twice declines too.
template <typename Member>
bool Members(Reader& in, Member&& member) {
  unsigned seen = 0;
  if (in.Eat('}')) return true;
  do {
    std::string_view key;
    if (!in.String(&key) || !in.Eat(':')) return false;
    const unsigned bit = member(key);
    if (bit == 0 || (seen & bit) != 0) return false;
    seen |= bit;
  } while (in.Eat(','));
  return in.Eat('}');
}

// An array: `element()` reads one element, false to decline.
template <typename Element>
bool Array(Reader& in, Element&& element) {
  if (!in.Eat('[')) return false;
  if (in.Eat(']')) return true;
  do {
    if (!element()) return false;
  } while (in.Eat(','));
  return in.Eat(']');
}

bool StringField(Reader& in, std::string* out) {
  std::string_view text;
  if (!in.String(&text)) return false;
  out->assign(text.data(), text.size());
  return true;
}

bool DeadlineField(Reader& in, uint32_t* out) {
  int64_t v = 0;
  if (!in.Integer(0, std::numeric_limits<uint32_t>::max(), &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// A ScoreRequest object after its '{'. `values`, lowerCamelCase names and unknown fields
// decline: the generic reader handles them.
bool ReadScoreRequest(Reader& in, v1::ScoreRequest* r) {
  return Members(in, [&](std::string_view key) -> unsigned {
    uint32_t deadline = 0;
    if (key == "schema_version") return StringField(in, r->mutable_schema_version()) ? 1 : 0;
    if (key == "subject") return StringField(in, r->mutable_subject()) ? 2 : 0;
    if (key == "arch") return StringField(in, r->mutable_arch()) ? 4 : 0;
    if (key == "syscalls") {
      const bool ok = Array(in, [&] {
        int64_t v = 0;
        if (!in.Integer(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(),
                        &v)) {
          return false;
        }
        r->add_syscalls(static_cast<int32_t>(v));
        return true;
      });
      return ok ? 8 : 0;
    }
    if (key == "deadline_ms" && DeadlineField(in, &deadline)) {
      r->set_deadline_ms(deadline);
      return 16;
    }
    return 0;
  });
}

bool ReadScoreBatchRequest(Reader& in, v1::ScoreBatchRequest* r) {
  return Members(in, [&](std::string_view key) -> unsigned {
    uint32_t deadline = 0;
    if (key == "schema_version") return StringField(in, r->mutable_schema_version()) ? 1 : 0;
    if (key == "items") {
      const bool ok = Array(in, [&] {
        return r->items_size() <= kMaxBatchItems && in.Eat('{') &&
               ReadScoreRequest(in, r->add_items());
      });
      return ok ? 2 : 0;
    }
    if (key == "deadline_ms" && DeadlineField(in, &deadline)) {
      r->set_deadline_ms(deadline);
      return 4;
    }
    return 0;
  });
}

class Writer {
 public:
  explicit Writer(std::string* out) : out_(*out) {}
  bool ok() const { return ok_; }

  void Raw(std::string_view s) { out_.append(s.data(), s.size()); }
  // Structure: a comma goes before every member or element but the first of its container.
  void Open(char c) {
    Next();
    out_ += c;
    first_ = true;
  }
  void Close(char c) {
    out_ += c;
    first_ = false;
  }
  void Name(std::string_view k) {
    Next();
    out_ += '"';
    Raw(k);
    Raw("\":");
    first_ = true;  // the value follows without a comma
  }
  // ASCII as protobuf's printer writes it: '"' and '\\' escaped, control characters and DEL
  // as \b \f \n \r \t or \u00XX, '<' '>' as \u003c \u003e. Anything else declines: protobuf
  // escapes some non-ASCII characters (U+2028, U+202C, ...) and refuses bad UTF-8.
  void String(const std::string& s) {
    for (char c : s) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        ok_ = false;
        return;
      }
    }
    Next();
    out_ += '"';
    for (size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      switch (c) {
        case '"': Raw("\\\""); break;
        case '\\': Raw("\\\\"); break;
        case '\b': Raw("\\b"); break;
        case '\f': Raw("\\f"); break;
        case '\n': Raw("\\n"); break;
        case '\r': Raw("\\r"); break;
        case '\t': Raw("\\t"); break;
        case '<': Raw("\\u003c"); break;
        case '>': Raw("\\u003e"); break;
        default:
          if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            Raw(buf);
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }
  // protobuf's SimpleDtoa: %.15g, or %.17g where that does not read back as the same double.
  void Double(double v) {
    if (!std::isfinite(v)) {
      ok_ = false;
      return;
    }
    Next();
    // to_chars with a precision formats as printf's %g does, without printf's cost.
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, 15);
    double back = 0;
    std::from_chars(buf, r.ptr, back);
    if (back != v) r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, 17);
    Raw(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }
  void Bool(bool b) {
    Next();
    Raw(b ? "true" : "false");
  }
  // "name":value
  void Member(std::string_view k, const std::string& v) {
    Name(k);
    String(v);
  }
  void Member(std::string_view k, double v) {
    Name(k);
    Double(v);
  }
  void Member(std::string_view k, bool v) {
    Name(k);
    Bool(v);
  }

 private:
  void Next() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  std::string& out_;
  bool ok_ = true;
  bool first_ = true;
};

void WriteScore(Writer& w, const v1::Score& s) {
  w.Open('{');
  w.Member("score", s.score());
  w.Member("anomalous", s.anomalous());
  w.Member("model_name", s.model_name());
  w.Member("model_version", s.model_version());
  w.Name("explanation");
  w.Open('[');
  for (const v1::Evidence& e : s.explanation()) {
    w.Open('{');
    w.Member("what", e.what());
    w.Member("weight", e.weight());
    w.Close('}');
  }
  w.Close(']');
  w.Member("cached", s.cached());
  w.Member("fallback", s.fallback());
  w.Member("fallback_reason", s.fallback_reason());
  w.Close('}');
}

// {"schema_version":..., <body>, "policy_version":...}: both responses' envelope.
template <typename Response, typename Body>
void WriteResponse(Writer& w, const Response& r, Body&& body) {
  w.Open('{');
  w.Member("schema_version", r.schema_version());
  body();
  w.Member("policy_version", r.policy_version());
  w.Close('}');
}

}  // namespace

bool ParseScoreJsonFast(std::string_view json, google::protobuf::Message* out) {
  Reader in(json);
  if (!in.Eat('{')) return false;
  const google::protobuf::Descriptor* d = out->GetDescriptor();
  bool ok = false;
  if (d == v1::ScoreRequest::descriptor()) {
    ok = ReadScoreRequest(in, static_cast<v1::ScoreRequest*>(out));
  } else if (d == v1::ScoreBatchRequest::descriptor()) {
    ok = ReadScoreBatchRequest(in, static_cast<v1::ScoreBatchRequest*>(out));
  }
  return ok && in.AtEnd();
}

bool ToScoreJsonFast(const google::protobuf::Message& m, std::string* out) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  out->clear();
  Writer w(out);
  if (d == v1::ScoreResponse::descriptor()) {
    const auto& r = static_cast<const v1::ScoreResponse&>(m);
    WriteResponse(w, r, [&] {
      if (!r.has_result()) return;  // an unset message field is left out, as protobuf does
      w.Name("result");
      WriteScore(w, r.result());
    });
  } else if (d == v1::ScoreBatchResponse::descriptor()) {
    const auto& r = static_cast<const v1::ScoreBatchResponse&>(m);
    WriteResponse(w, r, [&] {
      w.Name("results");
      w.Open('[');
      for (const v1::Score& s : r.results()) WriteScore(w, s);
      w.Close(']');
    });
  } else {
    return false;
  }
  if (!w.ok()) out->clear();
  return w.ok();
}

}  // namespace vigil::api
