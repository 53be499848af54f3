#include "core/syscall_table.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil::core {
namespace {

TEST(SyscallTableTest, I386NumbersOfAdfaLd) {
  EXPECT_EQ(SyscallName(Arch::kI386, 3), "read");
  EXPECT_EQ(SyscallName(Arch::kI386, 5), "open");
  EXPECT_EQ(SyscallName(Arch::kI386, 6), "close");
  EXPECT_EQ(SyscallName(Arch::kI386, 192), "mmap2");
  EXPECT_EQ(SyscallName(Arch::kI386, 195), "stat64");
  EXPECT_EQ(SyscallName(Arch::kI386, 340), "prlimit64");
}

TEST(SyscallTableTest, X86_64Numbers) {
  EXPECT_EQ(SyscallName(Arch::kX86_64, 0), "read");
  EXPECT_EQ(SyscallName(Arch::kX86_64, 2), "open");
  EXPECT_EQ(SyscallName(Arch::kX86_64, 59), "execve");
  EXPECT_EQ(SyscallNumber(Arch::kX86_64, "read"), 0);
  EXPECT_EQ(SyscallNumber(Arch::kX86_64, "mmap2"), -1);  // i386 only
}

TEST(SyscallTableTest, UnassignedAndOutOfRangeNumbersHaveNoName) {
  EXPECT_EQ(SyscallName(Arch::kI386, 222), "");  // a hole in the i386 table
  EXPECT_EQ(SyscallName(Arch::kI386, -1), "");
  EXPECT_EQ(SyscallName(Arch::kI386, kMaxSyscallNr), "");
  EXPECT_EQ(SyscallName(Arch::kI386, 1 << 30), "");
  EXPECT_EQ(SyscallName(Arch::kUnknown, 3), "");
}

TEST(SyscallTableTest, UnknownNamesHaveNoNumber) {
  EXPECT_EQ(SyscallNumber(Arch::kI386, "no_such_call"), -1);
  EXPECT_EQ(SyscallNumber(Arch::kI386, ""), -1);
  EXPECT_EQ(SyscallNumber(Arch::kUnknown, "read"), -1);
}

TEST(SyscallTableTest, NameAndNumberRoundTripForEveryAssignedCall) {
  for (Arch arch : {Arch::kI386, Arch::kX86_64}) {
    int assigned = 0;
    for (int nr = 0; nr < kMaxSyscallNr; ++nr) {
      const std::string_view name = SyscallName(arch, nr);
      if (name.empty()) continue;
      ++assigned;
      EXPECT_EQ(SyscallNumber(arch, name), nr) << ArchName(arch) << " " << name;
    }
    EXPECT_GT(assigned, 300) << ArchName(arch);
  }
}

TEST(SyscallTableTest, SharedNamesMapAcrossArchitectures) {
  for (const char* name : {"read", "write", "open", "close", "execve", "connect"}) {
    const int i386 = SyscallNumber(Arch::kI386, name);
    const int x64 = SyscallNumber(Arch::kX86_64, name);
    ASSERT_GE(i386, 0) << name;
    ASSERT_GE(x64, 0) << name;
    EXPECT_EQ(SyscallName(Arch::kI386, i386), SyscallName(Arch::kX86_64, x64));
  }
}

}  // namespace
}  // namespace vigil::core
