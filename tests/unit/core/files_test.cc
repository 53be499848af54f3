#include "core/files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace vigil::core {
namespace {

using ::testing::HasSubstr;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vigil-files-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::string dir_;
};

TEST_F(FilesTest, ReadsTheWholeFile) {
  std::string bytes(200000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  const std::string path = Write("a.bin", bytes);
  auto r = ReadFile(path, bytes.size());  // exactly at the limit is allowed
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(*r, bytes);
  auto empty = ReadFile(Write("empty", ""), 0);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST_F(FilesTest, RefusesAFileOverTheLimitNamingPathAndLimit) {
  const std::string path = Write("big", std::string(1001, 'x'));
  auto r = ReadFile(path, 1000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kOutOfRange);
  EXPECT_THAT(r.error().message(), HasSubstr(path));
  EXPECT_THAT(r.error().message(), HasSubstr("1001 bytes"));
  EXPECT_THAT(r.error().message(), HasSubstr("more than the 1000 bytes"));
}

TEST_F(FilesTest, ReadsKernelFilesWhoseSizeIsUnknown) {
  // /proc files report size 0; the limit is enforced on what is read.
  auto r = ReadFile("/proc/self/status", 1 << 20);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_THAT(*r, HasSubstr("Pid:"));
  auto small = ReadFile("/proc/self/status", 16);
  ASSERT_FALSE(small.has_value());
  EXPECT_EQ(small.error().code(), StatusCode::kOutOfRange);
  EXPECT_THAT(small.error().message(), HasSubstr("more than the 16 bytes"));
}

TEST_F(FilesTest, MissingFileAndFolderAreClearErrors) {
  auto missing = ReadFile(dir_ + "/nope", 10);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.error().message(), HasSubstr(dir_ + "/nope: cannot open"));
  auto folder = ReadFile(dir_, 10);
  ASSERT_FALSE(folder.has_value());
  EXPECT_EQ(folder.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(folder.error().message(), HasSubstr("is a directory"));
}

TEST_F(FilesTest, MakeDirsCreatesParentsAndGivesTheLeafItsMode) {
  const mode_t old = umask(022);
  const std::string leaf = dir_ + "/a/b/c";
  const Status st = MakeDirs(leaf + "/", 0700);
  umask(old);
  ASSERT_TRUE(st.ok()) << st.ToString();
  struct stat sb {};
  ASSERT_EQ(stat(leaf.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISDIR(sb.st_mode));
  EXPECT_EQ(sb.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((dir_ + "/a/b").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0755u);
  EXPECT_TRUE(MakeDirs(leaf, 0700).ok());  // existing folders are fine
}

TEST_F(FilesTest, MakeDirsRefusesAFileInTheWay) {
  const std::string path = Write("plain", "x");
  const Status st = MakeDirs(path, 0700);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(path));
  const Status below = MakeDirs(path + "/sub", 0700);
  ASSERT_FALSE(below.ok());
  EXPECT_THAT(below.message(), HasSubstr(path + "/sub"));
}

}  // namespace
}  // namespace vigil::core
