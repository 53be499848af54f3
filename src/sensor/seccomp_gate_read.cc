#include "sensor/seccomp_gate_read.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vigil::sensor {
namespace {

// Reads are cut at 4 KiB boundaries: a larger page's boundaries are among them, so no read spans
// a mapped and an unmapped page.
constexpr uint64_t kPage = 4096;

}  // namespace

bool ReadCallerMemory(pid_t pid, uint64_t addr, void* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    iovec local{static_cast<char*>(out) + done, len - done};
    iovec remote{reinterpret_cast<void*>(addr + done), len - done};
    const ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool ReadCallerString(pid_t pid, uint64_t addr, char* buf, size_t cap, size_t* len) {
  *len = 0;
  if (addr == 0) return false;
  size_t have = 0;
  while (have < cap) {
    const size_t want = std::min<uint64_t>(kPage - (addr % kPage), cap - have);
    iovec local{buf + have, want};
    iovec remote{reinterpret_cast<void*>(addr), want};
    const ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    const void* nul = std::memchr(buf + have, '\0', static_cast<size_t>(n));
    if (nul != nullptr) {
      *len = static_cast<size_t>(static_cast<const char*>(nul) - buf);
      return true;
    }
    have += static_cast<size_t>(n);
    addr += static_cast<uint64_t>(n);
  }
  return false;  // no NUL within cap bytes
}

bool IsLexicallyNormalAbsolute(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  // Each component: the bytes between one '/' and the next (or the end). An empty one is a
  // repeated '/' (a trailing '/' ends the path with an empty component, which stays).
  size_t start = 1;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view c = path.substr(start, end - start);
    if (c.empty() || c == "." || c == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace vigil::sensor
