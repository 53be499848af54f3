#pragma once

// Where the hub's store lives (config `store:`, docs/hub.md): a SQLite file path, or a
// PostgreSQL connection URI in libpq's form
//   postgres[ql]://[USER[:PASSWORD]@][HOST][:PORT][,HOST[:PORT]...][/DBNAME][?PARAM=VALUE&...]
// (https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING). A password is best
// kept out of the URI (`?passfile=FILE` in pgpass format, or PGPASSFILE / PGPASSWORD); when it is
// in the URI it is never printed: every message shows the location redacted.

#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::hub {

// True for a postgres:// or postgresql:// URI (then it is not a path).
bool IsPostgresLocation(std::string_view location);

// Checks a PostgreSQL URI without connecting (libpq's own parser, PQconninfoParse): at most
// 4096 bytes, no control characters, a well-formed URI with known parameters. The message says
// what is wrong and never contains the password.
core::Status CheckPostgresUri(std::string_view uri);

// The location as it may be shown: a URI with its password (in the user info or a `password`
// parameter) replaced by "***"; a path unchanged.
std::string RedactStoreLocation(std::string_view location);

// The password a URI carries (decoded; "" when none or unparsable), for scrubbing it out of
// messages that quote what the server or libpq said.
std::string PostgresUriPassword(std::string_view uri);

// `text` with every occurrence of `secret` replaced by "***" (unchanged when secret is empty).
std::string ScrubSecret(std::string text, std::string_view secret);

}  // namespace vigil::hub
