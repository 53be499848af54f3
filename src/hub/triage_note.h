#pragma once

// The note naming the triage model in force (hub/triage.h, "In force across restarts"): the file
// `<model_dir>/in-force.json`, signed with the hub's key (`in-force.json.minisig`; the signature
// is checked before the note is read). Format version 1, one JSON object and a newline:
//
//   {"format_version":1,"path":P,"sha256":HEX,"config_model":M,"activated_ms":T,"by":WHO}
//
// path: the model file; sha256: of its bytes when it was put in force; config_model: triage.model
// at that time ("" when none); activated_ms and by: when and by whom (informational). A note
// without "format_version" was written before the field existed (hubs up to the twelfth session)
// and has the same fields: it is read as version 1. Any other version is refused: a hub reads only
// the versions it knows, so that a note a newer hub wrote (whose fields may mean something else)
// is never half understood.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::hub {

inline constexpr int64_t kTriageNoteVersion = 1;

struct TriageInForceNote {
  int64_t format_version = kTriageNoteVersion;
  bool unversioned = false;  // read from a note without "format_version"
  std::string path;
  std::string sha256;
  std::string config_model;
  int64_t activated_ms = 0;
  std::string by;
};

// Reads a note (at most 64 KiB). Errors name `source` and the field: kFailedPrecondition for a
// format_version other than kTriageNoteVersion (an integer), kInvalidArgument for anything else
// (not a JSON object, a missing or mistyped field, a bad format_version).
core::Result<TriageInForceNote> ParseTriageInForceNote(std::string_view bytes,
                                                       const std::string& source);
// The note's bytes, at kTriageNoteVersion (whatever note.format_version says).
std::string TriageInForceNoteBytes(const TriageInForceNote& note);

}  // namespace vigil::hub
