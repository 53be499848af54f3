#include "audit/internal/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vigil::audit::internal {

core::Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return core::ErrnoError(errno, "cannot write '" + path + "'");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return core::Status::Ok();
}

core::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return core::ErrnoError(errno, "cannot open directory '" + dir + "'");
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return core::ErrnoError(err, "cannot sync directory '" + dir + "'");
  return core::Status::Ok();
}

core::Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return core::ErrnoError(errno, "cannot list '" + dir + "'");
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(d);
  return names;
}

}  // namespace vigil::audit::internal
