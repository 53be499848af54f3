#include "audit/internal/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace vigil::audit::internal {

core::Result<std::string> ReadWholeFile(const std::string& path, uint64_t limit) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return core::ErrnoError(errno, "cannot open '" + path + "'");
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return core::ErrnoError(err, "cannot stat '" + path + "'");
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    close(fd);
    return core::OutOfRange("'" + path + "' is " + std::to_string(st.st_size) +
                            " bytes, more than the limit of " + std::to_string(limit));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return core::ErrnoError(err, "cannot read '" + path + "'");
    }
    if (n == 0) break;  // shrank while we read: keep what is there
    got += static_cast<size_t>(n);
  }
  close(fd);
  out.resize(got);
  return out;
}

core::Status MakeDirs(const std::string& dir, unsigned mode) {
  if (dir.empty()) return core::InvalidArgument("empty directory name");
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
      return core::ErrnoError(errno, "cannot create directory '" + part + "'");
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return core::FailedPrecondition("'" + dir + "' is not a directory");
  }
  return core::Status::Ok();
}

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
