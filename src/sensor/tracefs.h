#pragma once

#include <string>

namespace vigil::sensor {

// Where libbpf looks for a tracepoint's id when it attaches a `tracepoint/...` program: the
// tracefs under debugfs when that directory exists, else /sys/kernel/tracing.
inline constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";
inline constexpr const char* kTracefs = "/sys/kernel/tracing";

// What EnsureTracefs found or did.
struct TracefsCheck {
  bool available = false;    // tracepoint ids can be read (under `path`)
  bool mounted_now = false;  // EnsureTracefs mounted tracefs at `path` itself
  std::string path;          // the directory libbpf will read
  std::string error;         // why not available (empty when it is)
};

// Makes the per-call tracepoints attachable: when the directory libbpf reads holds no tracefs
// (`events/` is missing), mounts tracefs at `tracefs_dir` — what systemd does at boot, and what
// a bare container or a minimal host leaves undone. Nothing is mounted when `debugfs_tracing`
// exists (libbpf reads that one) or `tracefs_dir` already holds the events, nor when `mount` is
// false. The paths are parameters for tests; the sensor passes the two constants above.
TracefsCheck EnsureTracefs(const std::string& debugfs_tracing, const std::string& tracefs_dir,
                           bool mount);

}  // namespace vigil::sensor
