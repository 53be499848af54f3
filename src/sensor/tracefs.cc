#include "sensor/tracefs.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vigil::sensor {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

TracefsCheck EnsureTracefs(const std::string& debugfs_tracing, const std::string& tracefs_dir,
                           bool mount) {
  TracefsCheck c;
  if (access(debugfs_tracing.c_str(), F_OK) == 0) {  // libbpf's own test: it reads this one
    c.path = debugfs_tracing;
    c.available = IsDirectory(debugfs_tracing + "/events");
    if (!c.available) c.error = debugfs_tracing + " exists but holds no tracepoint events";
    return c;
  }
  c.path = tracefs_dir;
  if (IsDirectory(tracefs_dir + "/events")) {
    c.available = true;
    return c;
  }
  if (!IsDirectory(tracefs_dir)) {
    c.error = "no tracefs: " + tracefs_dir + " is not a directory (kernel without tracefs?)";
    return c;
  }
  if (!mount) {
    c.error = "tracefs is not mounted at " + tracefs_dir;
    return c;
  }
  if (::mount("nodev", tracefs_dir.c_str(), "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0) {
    c.error = "tracefs is not mounted at " + tracefs_dir + " and mounting it failed (" +
              std::strerror(errno) + ")";
    return c;
  }
  c.mounted_now = true;
  c.available = IsDirectory(tracefs_dir + "/events");
  if (!c.available) c.error = "tracefs mounted at " + tracefs_dir + " holds no events";
  return c;
}

}  // namespace vigil::sensor
