#pragma once

// People who log in to the hub (docs/hub.md, "People and logins"): the users file, one user a
// line, `NAME ROLE HASH`, where HASH is an argon2id string (libsodium crypto_pwhash_str):
//
//   # vigil hub users: NAME ROLE ARGON2ID-HASH (vigil hub user add|list|remove)
//   ana analyst $argon2id$v=19$m=65536,t=2,p=1$...$...
//
// Blank lines and lines starting with '#' are ignored. A name is 1..64 bytes of
// [A-Za-z0-9._@-]; the role is viewer, analyst or admin (agents use tokens, not passwords);
// names are unique. Errors name the file and line: "users:3: role: expected viewer, analyst or
// admin, got \"root\"". Parsing needs no libsodium (hub_wire, fuzzed); hashing and the file
// operations (and FormatUsersFile) are in the hub library.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "hub/auth.h"

namespace vigil::hub {

struct UserEntry {
  std::string name;
  Role role = Role::kViewer;
  std::string hash;  // "$argon2id$..."
};

inline constexpr size_t kMaxUsersFileBytes = 1 << 20;
inline constexpr size_t kMinPasswordBytes = 12;
inline constexpr size_t kMaxPasswordBytes = 1024;

bool ValidUserName(std::string_view name);

core::Result<std::vector<UserEntry>> ParseUsersFile(std::string_view text,
                                                    std::string_view source);

// ---- hub library (libsodium) ----

std::string FormatUsersFile(const std::vector<UserEntry>& users);

// Refuses passwords shorter than kMinPasswordBytes or longer than kMaxPasswordBytes, or that
// are only spaces; otherwise the argon2id string (libsodium's interactive limits).
core::Result<std::string> HashPassword(std::string_view password);
// Whether `password` matches `hash` (crypto_pwhash_str_verify).
bool VerifyPassword(const std::string& hash, std::string_view password);

// The users at `path` (ParseUsersFile); an absent file is kNotFound.
core::Result<std::vector<UserEntry>> LoadUsers(const std::string& path);
// Writes `users` to `path` atomically (a temporary file in the same folder, mode 0600, synced,
// then renamed over it); the folder is created 0700 when missing.
core::Status SaveUsers(const std::string& path, const std::vector<UserEntry>& users);

// Adds (kAlreadyExists when the name is taken) or removes (kNotFound when absent) one user,
// holding `path`.lock so that two commands never lose each other's change. An absent file is
// an empty list.
core::Status AddUser(const std::string& path, UserEntry user);
core::Status RemoveUser(const std::string& path, std::string_view name);

}  // namespace vigil::hub
