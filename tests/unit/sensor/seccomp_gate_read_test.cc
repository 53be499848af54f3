// Reading a held call's arguments out of another process (sensor/seccomp_gate_read.h): strings at
// the edge of a mapping, bounds, another process's memory at the same address, a process gone;
// and the fast path of making a path lexically normal, against std::filesystem.

#include "sensor/seccomp_gate_read.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace vigil::sensor {
namespace {

constexpr size_t kPage = 4096;

// Two pages, the second one inaccessible (PROT_NONE, which keeps its addresses from being mapped
// again meanwhile): what lies at the end of the first is at the edge of what the process can read.
class EdgeOfMapping {
 public:
  EdgeOfMapping() {
    void* p = mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<char*>(p);
    ok_ = mprotect(base_ + kPage, kPage, PROT_NONE) == 0;
  }
  ~EdgeOfMapping() {
    if (base_ != nullptr) munmap(base_, 2 * kPage);
  }
  bool ok() const { return ok_; }
  // Puts `bytes` so that they end exactly at the end of the mapped page; returns their address.
  uint64_t PutAtEnd(const std::string& bytes) {
    char* at = base_ + kPage - bytes.size();
    std::memcpy(at, bytes.data(), bytes.size());
    return reinterpret_cast<uint64_t>(at);
  }

 private:
  char* base_ = nullptr;
  bool ok_ = false;
};

std::string Read(pid_t pid, uint64_t addr, size_t cap, bool* ok) {
  std::vector<char> buf(cap);
  size_t len = 0;
  *ok = ReadCallerString(pid, addr, buf.data(), cap, &len);
  return std::string(buf.data(), len);
}

TEST(SeccompGateReadTest, ReadsAStringThatEndsJustBeforeAnInaccessiblePage) {
  EdgeOfMapping m;
  ASSERT_TRUE(m.ok());
  bool ok = false;
  const uint64_t at = m.PutAtEnd(std::string("/etc/hostname") + '\0');
  EXPECT_EQ(Read(getpid(), at, 4096, &ok), "/etc/hostname");
  EXPECT_TRUE(ok);
  // The same string without its NUL runs into the inaccessible page: unreadable.
  const uint64_t open = m.PutAtEnd("/etc/hostname");
  Read(getpid(), open, 4096, &ok);
  EXPECT_FALSE(ok);
}

TEST(SeccompGateReadTest, AStringMustBeShorterThanTheBuffer) {
  const std::string s(100, 'x');  // 100 bytes and a NUL
  bool ok = false;
  EXPECT_EQ(Read(getpid(), reinterpret_cast<uint64_t>(s.c_str()), 101, &ok), s);
  EXPECT_TRUE(ok);
  Read(getpid(), reinterpret_cast<uint64_t>(s.c_str()), 100, &ok);
  EXPECT_FALSE(ok);
  // Longer than a page, crossing page boundaries.
  const std::string long_one(3 * kPage + 17, 'y');
  EXPECT_EQ(Read(getpid(), reinterpret_cast<uint64_t>(long_one.c_str()), 4 * kPage, &ok), long_one);
  EXPECT_TRUE(ok);
  Read(getpid(), 0, 4096, &ok);
  EXPECT_FALSE(ok);
}

TEST(SeccompGateReadTest, ReadsExactlyTheBytesAskedForOrFails) {
  EdgeOfMapping m;
  ASSERT_TRUE(m.ok());
  const uint64_t at = m.PutAtEnd("0123456789abcdef");
  char out[16] = {};
  ASSERT_TRUE(ReadCallerMemory(getpid(), at, out, sizeof out));
  EXPECT_EQ(std::string(out, sizeof out), "0123456789abcdef");
  // One byte more reaches the inaccessible page.
  char more[17] = {};
  EXPECT_FALSE(ReadCallerMemory(getpid(), at, more, sizeof more));
}

TEST(SeccompGateReadTest, ReadsTheNamedProcessAndFailsOnceItIsGone) {
  static char text[64];
  std::strcpy(text, "the child's");
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = 0;
    (void)!write(ready[1], &c, 1);
    (void)!read(go[0], &c, 1);  // until the parent has read
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  std::strcpy(text, "the parent's");  // copy on write: the child's copy is unchanged
  bool ok = false;
  EXPECT_EQ(Read(child, reinterpret_cast<uint64_t>(text), 64, &ok), "the child's");
  EXPECT_TRUE(ok);
  EXPECT_EQ(Read(getpid(), reinterpret_cast<uint64_t>(text), 64, &ok), "the parent's");
  ASSERT_EQ(write(go[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  Read(child, reinterpret_cast<uint64_t>(text), 64, &ok);
  EXPECT_FALSE(ok);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
}

// Every absolute path over {'/', '.', 'a'} up to 8 bytes: a path the fast path takes as it is
// must be what std::filesystem makes of it, and a path std::filesystem leaves unchanged is taken
// by the fast path (else the fast path would rarely be fast), but for runs of '/' alone.
TEST(SeccompGateReadTest, LexicallyNormalFastPathAgreesWithFilesystem) {
  std::vector<std::string> paths = {"/"};
  for (size_t i = 0; i < paths.size(); ++i) {
    if (paths[i].size() >= 8) continue;
    for (char c : {'/', '.', 'a'}) paths.push_back(paths[i] + c);
  }
  size_t fast = 0;
  for (const std::string& p : paths) {
    const bool unchanged = std::filesystem::path(p).lexically_normal().string() == p;
    if (IsLexicallyNormalAbsolute(p)) {
      EXPECT_TRUE(unchanged) << p;
    }
    // libstdc++ leaves "//", "///", ... as they are; they take the slow path, to the same end.
    const bool only_slashes = p.find_first_not_of('/') == std::string::npos;
    if (unchanged && !only_slashes) {
      EXPECT_TRUE(IsLexicallyNormalAbsolute(p)) << p;
    }
    fast += IsLexicallyNormalAbsolute(p) ? 1 : 0;
  }
  EXPECT_GT(fast, 100u);
  EXPECT_TRUE(IsLexicallyNormalAbsolute("/usr/lib/x86_64-linux-gnu/libc.so.6"));
  EXPECT_TRUE(IsLexicallyNormalAbsolute("/tmp/dir/"));
  EXPECT_TRUE(IsLexicallyNormalAbsolute("/a/...b/..c"));
  EXPECT_FALSE(IsLexicallyNormalAbsolute("relative/path"));
  EXPECT_FALSE(IsLexicallyNormalAbsolute(""));
}

}  // namespace
}  // namespace vigil::sensor
