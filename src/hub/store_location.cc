#include "hub/store_location.h"

#include <libpq-fe.h>

#include <memory>

namespace vigil::hub {
namespace {

constexpr size_t kMaxUriBytes = 4096;

struct ConninfoFree {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoFree>;

// libpq's parse of `uri`, or null with *error set (password scrubbed).
Conninfo ParseConninfo(const std::string& uri, std::string* error) {
  char* err = nullptr;
  Conninfo opts(PQconninfoParse(uri.c_str(), &err));
  if (!opts) {
    std::string why = err != nullptr ? err : "not a valid connection URI";
    PQfreemem(err);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    *error = why;
  }
  return opts;
}

}  // namespace

bool IsPostgresLocation(std::string_view location) {
  return location.starts_with("postgres://") || location.starts_with("postgresql://");
}

std::string ScrubSecret(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

std::string RedactStoreLocation(std::string_view location) {
  if (!IsPostgresLocation(location)) return std::string(location);
  std::string out(location);
  // User info, as libpq reads it: up to the first '@' before any '/'.
  const size_t start = out.find("://") + 3;
  const size_t end = out.find_first_of("@/", start);
  if (end != std::string::npos && out[end] == '@') {
    const size_t colon = out.find(':', start);
    if (colon < end) out.replace(colon + 1, end - colon - 1, "***");
  }
  // A password parameter in the query.
  const size_t query = out.find('?');
  if (query != std::string::npos) {
    size_t p = query + 1;
    while (p < out.size()) {
      size_t amp = out.find('&', p);
      if (amp == std::string::npos) amp = out.size();
      if (out.compare(p, 9, "password=") == 0 && p + 9 <= amp) {
        out.replace(p + 9, amp - p - 9, "***");
        amp = p + 9 + 3;
      }
      p = amp + 1;
    }
  }
  return out;
}

std::string PostgresUriPassword(std::string_view uri) {
  std::string error;
  Conninfo opts = ParseConninfo(std::string(uri), &error);
  if (!opts) return "";
  for (const PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password" && o->val != nullptr) return o->val;
  }
  return "";
}

core::Status CheckPostgresUri(std::string_view uri) {
  if (!IsPostgresLocation(uri)) {
    return core::InvalidArgument("expected a postgres:// or postgresql:// URI");
  }
  if (uri.size() > kMaxUriBytes) {
    return core::InvalidArgument("the URI is longer than 4096 bytes");
  }
  for (const char ch : uri) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == ' ') {
      return core::InvalidArgument("the URI contains a space or control character");
    }
  }
  std::string error;
  Conninfo opts = ParseConninfo(std::string(uri), &error);
  if (!opts) {
    // libpq may quote the part it could not read: it must not show a password.
    std::string why = ScrubSecret(error, PostgresUriPassword(uri));
    const size_t at = uri.find('@');
    if (at != std::string::npos) {
      // Unparsable URIs have no reliable password: quote nothing from the user info.
      const std::string_view userinfo = uri.substr(0, at);
      const size_t colon = userinfo.find(':', userinfo.find("://") + 3);
      if (colon != std::string_view::npos) {
        why = ScrubSecret(why, userinfo.substr(colon + 1));
      }
    }
    return core::InvalidArgument("not a valid PostgreSQL URI: " + why);
  }
  return {};
}

}  // namespace vigil::hub
