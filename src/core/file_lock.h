#pragma once

// An exclusive flock() on a file, held for the object's lifetime: how processes that share a
// state file (the enforcement ledger, the attestation event list) take turns.

#include <string>

#include "core/status.h"

namespace vigil::core {

class FileLock {
 public:
  // Opens (creating, mode 0600) and locks PATH, waiting for another holder. Errors name PATH.
  static Result<FileLock> Take(const std::string& path);

  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace vigil::core
