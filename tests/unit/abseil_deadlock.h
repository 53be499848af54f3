#pragma once

// For the tests that Vigil's gRPC servers and clients turn Abseil's mutex deadlock detection off
// (src/api/grpc_api.cc, src/hub/agent_grpc.cc, src/agent/cert_renewal.cc: a process-wide spin
// lock and a graph walk on every lock gRPC takes). With it on, as Debian's Abseil build has it
// by default, taking two mutexes in both orders aborts the process; with it off it does not.

#include <absl/synchronization/mutex.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

namespace vigil::testing {

// Takes two mutexes in one order, then in the other, removes `child_dir` (the temporary folder
// the child's fixture made: it never tears down) and ends the (death test's) process with 0
// without running exit handlers. Use as
//   GTEST_FLAG_SET(death_test_style, "threadsafe");  // a new process, no fork of gRPC's threads
//   EXPECT_EXIT(LockTwoMutexesBothWays(dir_), ::testing::ExitedWithCode(0), "");
inline void LockTwoMutexesBothWays(const std::filesystem::path& child_dir) {
  absl::Mutex a;
  absl::Mutex b;
  {
    absl::MutexLock la(&a);
    absl::MutexLock lb(&b);
  }
  {
    absl::MutexLock lb(&b);
    absl::MutexLock la(&a);
  }
  std::error_code ec;
  std::filesystem::remove_all(child_dir, ec);
  _exit(0);
}

}  // namespace vigil::testing
