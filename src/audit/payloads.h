#pragma once

// Payloads of the records Vigil writes, built from the core value types, so that every command
// records the same fields for the same kind of event (field list: docs/audit-log-format.md).

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/event.h"
#include "core/status.h"

namespace vigil::audit {

// {"score","anomalous","model":{"name","version"},"subject","pid","uid","host","stream",
//  "events","time_ns","explanation":[{"what","weight"}...]}
nlohmann::json VerdictPayload(const core::Verdict& v);

// A decision record: {"action","enforced","mode","rule","reason","verdict":{...}}.
nlohmann::json DecisionPayload(const core::Decision& d, std::string_view mode);

// A model-change record: {"action" (loaded, trained, refused, ...),"path","name","version",
// "sha256" (of the file; omitted when empty),"reason" (omitted when empty)}.
nlohmann::json ModelChangePayload(std::string_view action, std::string_view path,
                                  std::string_view name, std::string_view version,
                                  std::string_view sha256, std::string_view reason = {});

// A mode-change record: {"from","to","reason"}.
nlohmann::json ModeChangePayload(std::string_view from, std::string_view to,
                                 std::string_view reason);

// Lowercase hex SHA-256 of a file's contents (files up to 4 GiB, read whole).
core::Result<std::string> FileSha256(const std::string& path);
// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

}  // namespace vigil::audit
