#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vigil::core {
namespace {

// Closes a file descriptor when the read ends, whichever way it ends.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { close(fd_); }

 private:
  int fd_;
};

}  // namespace

Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, path + ": cannot open");
  FdCloser closer(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoError(errno, path + ": cannot stat");
  if (S_ISDIR(st.st_mode)) return InvalidArgument(path + ": is a directory, not a file");
  auto too_big = [&](uint64_t size) {
    return OutOfRange(path + ": " + (size > max_bytes ? std::to_string(size) + " bytes, " : "") +
                      "more than the " + std::to_string(max_bytes) + " bytes this input may have");
  };
  if (st.st_size > 0 && static_cast<uint64_t>(st.st_size) > max_bytes) {
    return too_big(static_cast<uint64_t>(st.st_size));
  }
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, path + ": read failed");
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > max_bytes) return too_big(0);
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status MakeDirs(const std::string& dir, unsigned mode) {
  if (dir.empty()) return InvalidArgument("empty folder name");
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (dir[pos - 1] == '/') continue;  // "a//b" or a trailing slash
    const std::string part = dir.substr(0, pos);
    const bool leaf = dir.find_first_not_of('/', pos) == std::string::npos;
    if (mkdir(part.c_str(), leaf ? mode : 0755) != 0 && errno != EEXIST) {
      return ErrnoError(errno, part + ": cannot create folder");
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return ErrnoError(errno, dir + ": cannot stat");
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir + ": exists and is not a folder");
  return Status::Ok();
}

Result<std::string> ReadTokenFile(const std::string& path, std::string_view what) {
  constexpr uint64_t kMaxTokenFileBytes = 16 * 1024;
  VIGIL_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxTokenFileBytes));
  text = text.substr(0, text.find('\n'));
  if (!text.empty() && text.back() == '\r') text.pop_back();
  const std::string where = std::string(what) + " file " + path;
  if (text.empty()) return InvalidArgument(where + ": no token in it");
  for (char c : text) {
    if (c <= ' ' || c > '~') return InvalidArgument(where + ": the first line is not a token");
  }
  return text;
}

}  // namespace vigil::core
