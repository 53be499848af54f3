#pragma once

// The fields a rule condition can read, and what an evaluation reads them from. Field names and
// meanings follow Falco's where Vigil has the data (docs/policy.md lists them); Vigil adds the
// ml.* fields (the model's verdict on the event's process) and asset.class. A rule naming a
// field that is not here is disabled with a warning by the loader, never evaluated half-blind.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"

namespace vigil::policy {

// One ancestor of the acting process, parent first.
struct Ancestor {
  std::string name;  // comm
  std::string exe;   // executable path
  std::vector<std::string> argv;  // argv[0..]
};

// A request at the industrial gateway's Modbus/TCP proxy (docs/gateway.md, "Rules"): what the
// modbus.* fields read. Filled by the gateway per written value (a write of several registers
// is evaluated once per register) or per request of another function code; the views must
// outlive the evaluation.
struct ModbusInput {
  uint8_t unit = 0;
  uint8_t function = 0;
  bool write = false;       // a checked write (function 5, 6, 15, 16, 23's write part)
  bool coil = false;        // the written register kind: coil, else holding register
  uint16_t address = 0;     // writes: the register written
  uint32_t value = 0;       // writes: the value (coils 0/1)
  std::string_view asset;   // the asset mapped to the address; "" when none is
  std::string_view signal;  // the asset's actuator in the model; "" when none
  bool critical = false;
  double min = 0, max = 0;  // the asset's allowed range
  double max_rate = 0;      // per second; 0 when the asset sets none
  bool has_rate = false;    // max_rate set and an earlier value was committed: rate is known
  double rate = 0;          // |value - last committed value| / seconds since it
  bool rate_exceeded = false;  // the change exceeds max_rate * seconds since the last value
};

// What one evaluation sees. Only `event` is required.
struct EvalInput {
  const core::Event* event = nullptr;
  const core::Verdict* verdict = nullptr;  // ml.* fields are absent without one
  std::vector<std::string> argv;           // the acting process's argv[0..]
  std::string user_name;                   // user.name; absent when empty
  std::vector<Ancestor> ancestors;         // parent first
  std::string container_id = "host";       // "host" outside containers (Falco's convention)
  std::string cgroup;                      // the process's cgroup v2 path; "" when unknown
  std::string cwd;                         // proc.cwd; absent when empty
  int64_t proc_start_time_ns = 0;          // when the process started (Unix ns); 0 unknown
  // Container metadata (docs/policy.md: where it comes from); absent when empty / -1.
  std::string container_image;             // image reference, e.g. docker.io/library/nginx:1.25
  int container_privileged = -1;           // 1 privileged, 0 not, -1 unknown
  std::string k8s_namespace;
  std::string asset_class;                 // asset.class; absent when empty
  const ModbusInput* modbus = nullptr;     // modbus.* fields; absent when null
};

// kIpNet: an IP address compared with =, != and in against addresses or CIDR blocks
// ("10.0.0.0/8"): equal means inside the block.
enum class FieldType : uint8_t { kString, kNumber, kBool, kIpNet };

// An extracted value: absent, one value, or several (proc.aname without an index: every
// ancestor). Comparisons hold when any value satisfies them. The strings are views into the
// EvalInput (which outlives the evaluation), into static text, or into `own` (a value computed
// for this event, e.g. a normalised path): extracting allocates nothing once `own` and `strs`
// have grown to size.
struct FieldValue {
  bool present = false;
  std::vector<std::string_view> strs;  // kString, kIpNet and kBool ("true"/"false")
  double num = 0;                      // kNumber
  std::string own;                     // storage of a computed value (see Own)
  // `s` must outlive the evaluation (the input, static text or `own`).
  void Set(std::string_view s) {
    present = true;
    if (strs.size() == 1) {
      strs[0] = s;
    } else {
      strs.clear();
      strs.push_back(s);
    }
  }
  void Set(const char* s) { Set(std::string_view(s)); }
  void Set(std::string&&) = delete;  // a temporary would dangle: write it into Own()
  // The cleared buffer for a computed value; SetOwn() then makes it the value.
  std::string& Own() {
    own.clear();
    return own;
  }
  void SetOwn() { Set(std::string_view(own)); }
  void SetNumber(double v) {
    present = true;
    num = v;
  }
  void Reset() {
    present = false;
    strs.clear();
    num = 0;
  }
};

enum class ArgUse : uint8_t { kNone, kOptionalIndex, kRequiredIndex };

struct FieldDef {
  std::string_view name;
  FieldType type;
  ArgUse arg;
  std::string_view description;
  // Fills `out` (left absent when the event does not carry the value). `index` is the
  // bracketed argument (-1 when none was given).
  void (*extract)(const EvalInput& in, int index, FieldValue* out);
};

// Every supported field, in documentation order.
const std::vector<FieldDef>& Fields();
// nullptr when `name` is not a supported field.
const FieldDef* FindField(std::string_view name);

// Falco's evt.type of an event: the system call's name for syscall and typed events, "execve"
// for process starts, "openat" for file opens, "connect", "clone", "procexit".
std::string EventTypeName(const core::Event& e);
// The same as a view of static text (no allocation).
std::string_view EventTypeView(const core::Event& e);

}  // namespace vigil::policy
