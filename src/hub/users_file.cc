// The users file's parser and writer (users.h); no libsodium here, so the fuzz target links it.

#include <string>

#include "hub/users.h"

namespace vigil::hub {
namespace {

// An argon2id string as crypto_pwhash_str writes it: printable ASCII, no spaces, under
// crypto_pwhash_STRBYTES (128) bytes.
bool PlausibleHash(std::string_view h) {
  if (h.size() >= 128 || h.substr(0, 10) != "$argon2id$") return false;
  for (char c : h) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// The roles a person may have (auth.cc's ParseRole, which this library does not link, also takes
// "agent").
bool ParsePersonRole(std::string_view name, Role* out) {
  if (name == "viewer") *out = Role::kViewer;
  else if (name == "analyst") *out = Role::kAnalyst;
  else if (name == "admin") *out = Role::kAdmin;
  else return false;
  return true;
}

}  // namespace

bool ValidUserName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

core::Result<std::vector<UserEntry>> ParseUsersFile(std::string_view text,
                                                    std::string_view source) {
  if (text.size() > kMaxUsersFileBytes) {
    return core::InvalidArgument(std::string(source) + ": larger than 1 MiB");
  }
  std::vector<UserEntry> users;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto at = [&](const std::string& what) {
      return core::InvalidArgument(std::string(source) + ":" + std::to_string(line_no) + ": " +
                                   what);
    };
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    std::vector<std::string_view> fields;
    size_t i = first;
    while (i < line.size()) {
      const size_t end = line.find_first_of(" \t", i);
      fields.push_back(line.substr(i, end == std::string_view::npos ? end : end - i));
      if (end == std::string_view::npos) break;
      i = line.find_first_not_of(" \t", end);
      if (i == std::string_view::npos) break;
    }
    if (fields.size() != 3) {
      return at("expected NAME ROLE HASH (3 fields), got " + std::to_string(fields.size()));
    }
    UserEntry u;
    u.name = std::string(fields[0]);
    if (!ValidUserName(u.name)) {
      return at("name: expected 1..64 bytes of [A-Za-z0-9._@-]");
    }
    if (!ParsePersonRole(fields[1], &u.role)) {
      std::string shown(fields[1].substr(0, 32));
      for (char& c : shown) {
        if (c < ' ' || c > '~') c = '?';
      }
      return at("role: expected viewer, analyst or admin, got \"" + shown + "\"");
    }
    if (!PlausibleHash(fields[2])) {
      return at("hash: expected an argon2id string ($argon2id$..., made by vigil hub user add)");
    }
    u.hash = std::string(fields[2]);
    for (const UserEntry& o : users) {
      if (o.name == u.name) return at("name \"" + u.name + "\" appears twice");
    }
    users.push_back(std::move(u));
  }
  return users;
}

}  // namespace vigil::hub
