// EnsureTracefs (sensor/tracefs.h) on directories of the test's own: it mounts tracefs where
// none is, once, and says why when it cannot. Mounting needs root (CI runs as root).
#include "sensor/tracefs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vigil::sensor {
namespace {

constexpr long kTracefsMagic = 0x74726163;  // linux/magic.h TRACEFS_MAGIC

class TracefsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vigil-tracefs-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    root_ = tmpl;
    tracing_ = root_ + "/tracing";
    absent_debugfs_ = root_ + "/debug-tracing";  // not created: as on a host without debugfs
    ASSERT_EQ(mkdir(tracing_.c_str(), 0755), 0) << std::strerror(errno);
  }
  void TearDown() override {
    if (mounted_) umount2(tracing_.c_str(), MNT_DETACH);
    rmdir(tracing_.c_str());
    rmdir(absent_debugfs_.c_str());
    rmdir(root_.c_str());
  }

  std::string root_, tracing_, absent_debugfs_;
  bool mounted_ = false;
};

TEST_F(TracefsTest, MountsTracefsWhereNoneIsMountedAndOnlyOnce) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting tracefs needs root (CI runs as root)";
  const TracefsCheck c = EnsureTracefs(absent_debugfs_, tracing_, true);
  mounted_ = c.mounted_now;
  ASSERT_TRUE(c.available) << c.error;
  EXPECT_TRUE(c.mounted_now);
  EXPECT_EQ(c.path, tracing_);
  EXPECT_TRUE(c.error.empty()) << c.error;
  struct statfs fs {};
  ASSERT_EQ(statfs(tracing_.c_str(), &fs), 0) << std::strerror(errno);
  EXPECT_EQ(static_cast<long>(fs.f_type), kTracefsMagic);
  struct stat st {};
  EXPECT_EQ(stat((tracing_ + "/events/syscalls/sys_exit_openat/id").c_str(), &st), 0)
      << "the per-call tracepoint's id is readable there";

  const TracefsCheck again = EnsureTracefs(absent_debugfs_, tracing_, true);
  EXPECT_TRUE(again.available) << again.error;
  EXPECT_FALSE(again.mounted_now) << "a mounted tracefs is used as it is";
}

TEST_F(TracefsTest, WithMountingOffAnUnmountedDirectoryIsReportedNotMounted) {
  const TracefsCheck c = EnsureTracefs(absent_debugfs_, tracing_, false);
  EXPECT_FALSE(c.available);
  EXPECT_FALSE(c.mounted_now);
  EXPECT_NE(c.error.find("not mounted at " + tracing_), std::string::npos) << c.error;
  struct statfs fs {};
  ASSERT_EQ(statfs(tracing_.c_str(), &fs), 0);
  EXPECT_NE(static_cast<long>(fs.f_type), kTracefsMagic);
}

TEST_F(TracefsTest, AMissingMountPointIsNamed) {
  const std::string missing = root_ + "/no-such-dir";
  const TracefsCheck c = EnsureTracefs(absent_debugfs_, missing, true);
  EXPECT_FALSE(c.available);
  EXPECT_FALSE(c.mounted_now);
  EXPECT_NE(c.error.find(missing + " is not a directory"), std::string::npos) << c.error;
}

TEST_F(TracefsTest, ADebugfsTracingDirectoryIsWhatLibbpfReadsSoNothingIsMountedElsewhere) {
  ASSERT_EQ(mkdir(absent_debugfs_.c_str(), 0755), 0);  // exists, but holds no events
  const TracefsCheck c = EnsureTracefs(absent_debugfs_, tracing_, true);
  EXPECT_FALSE(c.available);
  EXPECT_FALSE(c.mounted_now);
  EXPECT_EQ(c.path, absent_debugfs_);
  EXPECT_NE(c.error.find("holds no tracepoint events"), std::string::npos) << c.error;
  ASSERT_EQ(mkdir((absent_debugfs_ + "/events").c_str(), 0755), 0);
  const TracefsCheck with_events = EnsureTracefs(absent_debugfs_, tracing_, true);
  EXPECT_TRUE(with_events.available) << with_events.error;
  EXPECT_FALSE(with_events.mounted_now);
  rmdir((absent_debugfs_ + "/events").c_str());
}

}  // namespace
}  // namespace vigil::sensor
