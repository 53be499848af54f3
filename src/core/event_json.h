#pragma once

// JSON renderings of the core types.
// - Events: Vigil's own JSON Lines event format (schema "vigil.event/v1",
//   docs/event-schema.md). ParseEventJson validates types and ranges and never throws.
// - Verdicts: an OCSF Detection Finding (class_uid 2004) with Vigil's fields under "vigil".
// - Typed events (exec, exit, fork, open, connect and the typed calls): OCSF activity events
//   (Process Activity 1007, File System Activity 1001, Network Activity 4001).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/event.h"
#include "core/status.h"

namespace vigil::core {

// Parses one line. Errors (kInvalidArgument) name the field and the reason, e.g.
// "field \"syscall.nr\": expected an integer"; the caller adds file and line.
Result<Event> ParseEventJson(std::string_view line);

// One line of JSON, no trailing newline.
std::string EventToJson(const Event& event);

// One line of JSON, no trailing newline: the verdict as an OCSF 1.1 Detection Finding.
std::string VerdictToOcsfJson(const Verdict& verdict);

// The fields every OCSF 1.1 Detection Finding Vigil writes starts with: class 2004 (category
// Findings), activity 1 (Create), status 1 (New), the time in ms, the severity, and the product
// metadata. Callers add message, finding_info, device, process and "vigil".
nlohmann::json OcsfFindingBase(int64_t time_ns, int severity_id);

// One line of JSON, no trailing newline: the event as an OCSF 1.1 activity event, with the
// original kind and sequence number under "vigil". nullopt for kinds no OCSF activity class
// describes on its own (the per-call syscall stream, stream ends): those stay in Vigil's format.
std::optional<std::string> EventToOcsfJson(const Event& event);

}  // namespace vigil::core
