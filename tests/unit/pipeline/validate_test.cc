#include "pipeline/validate.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/syscall_table.h"

namespace vigil::pipeline {
namespace {

using core::Arch;
using core::Event;
using core::EventKind;

Event Syscall(Arch arch, int nr) {
  Event e;
  e.kind = EventKind::kSyscall;
  e.source = core::EventSource::kReplay;
  e.seq = 1;
  e.stream = "adfa/train/0001";
  e.proc.comm = "nginx";
  e.syscall.arch = arch;
  e.syscall.nr = nr;
  return e;
}

Event OfKind(EventKind kind) {
  Event e;
  e.kind = kind;
  e.source = core::EventSource::kEbpf;
  e.proc.comm = "curl";
  return e;
}

TEST(EventValidatorTest, AcceptsWellFormedEventsOfEveryKind) {
  EventValidator v;
  EXPECT_EQ(v.Check(Syscall(Arch::kX86_64, 0)), RejectReason::kNone);
  EXPECT_EQ(v.Check(Syscall(Arch::kI386, 5)), RejectReason::kNone);
  Event open = OfKind(EventKind::kFileOpen);
  open.path = "/etc/passwd";
  EXPECT_EQ(v.Check(open), RejectReason::kNone);
  Event exec = OfKind(EventKind::kProcessExec);
  EXPECT_EQ(v.Check(exec), RejectReason::kNone);
  Event net = OfKind(EventKind::kNetConnect);
  net.net.daddr = "10.0.0.1";
  EXPECT_EQ(v.Check(net), RejectReason::kNone);
  net.net.daddr = "fe80::1";
  EXPECT_EQ(v.Check(net), RejectReason::kNone);
  EXPECT_EQ(v.Check(OfKind(EventKind::kProcessExit)), RejectReason::kNone);
  EXPECT_EQ(v.Check(OfKind(EventKind::kStreamEnd)), RejectReason::kNone);
}

TEST(EventValidatorTest, RejectsBadSyscalls) {
  EventValidator v;
  EXPECT_EQ(v.Check(Syscall(Arch::kUnknown, 3)), RejectReason::kSyscallArchUnknown);
  EXPECT_EQ(v.Check(Syscall(static_cast<Arch>(42), 3)), RejectReason::kSyscallArchUnknown);
  EXPECT_EQ(v.Check(Syscall(Arch::kX86_64, -1)), RejectReason::kSyscallNrOutOfRange);
  EXPECT_EQ(v.Check(Syscall(Arch::kX86_64, core::kMaxSyscallNr)),
            RejectReason::kSyscallNrOutOfRange);
  int unassigned = -1;
  for (int nr = 0; nr < core::kMaxSyscallNr; ++nr) {
    if (core::SyscallName(Arch::kX86_64, nr).empty()) {
      unassigned = nr;
      break;
    }
  }
  ASSERT_GE(unassigned, 0) << "x86_64 table has no gap to test with";
  EXPECT_EQ(v.Check(Syscall(Arch::kX86_64, unassigned)), RejectReason::kSyscallNrUnassigned);
}

TEST(EventValidatorTest, RejectsMissingPayloads) {
  EventValidator v;
  EXPECT_EQ(v.Check(OfKind(EventKind::kFileOpen)), RejectReason::kFileOpenMissingPath);
  Event exec = OfKind(EventKind::kProcessExec);
  exec.proc.comm.clear();
  EXPECT_EQ(v.Check(exec), RejectReason::kExecMissingProgram);
  exec.path = "/usr/bin/id";
  EXPECT_EQ(v.Check(exec), RejectReason::kNone);
  Event net = OfKind(EventKind::kNetConnect);
  EXPECT_EQ(v.Check(net), RejectReason::kNetMissingDaddr);
  net.net.daddr = "example.com";
  EXPECT_EQ(v.Check(net), RejectReason::kNetBadDaddr);
  net.net.daddr = std::string("10.0.0.1\0x", 10);
  EXPECT_EQ(v.Check(net), RejectReason::kEmbeddedNul);
}

TEST(EventValidatorTest, RejectsBadEnumsTimesAndLengths) {
  ValidatorOptions o;
  o.max_comm = 4;
  o.max_stream = 8;
  o.max_path = 10;
  o.max_host = 3;
  o.max_exe = 5;
  EventValidator v(o);
  Event e = Syscall(Arch::kX86_64, 1);
  e.proc.comm = "abc";
  e.stream = "s";
  ASSERT_EQ(v.Check(e), RejectReason::kNone);

  Event bad = e;
  bad.source = static_cast<core::EventSource>(200);
  EXPECT_EQ(v.Check(bad), RejectReason::kUnknownSource);
  bad = e;
  bad.kind = static_cast<EventKind>(99);
  EXPECT_EQ(v.Check(bad), RejectReason::kUnknownKind);
  bad = e;
  bad.time_ns = -1;
  EXPECT_EQ(v.Check(bad), RejectReason::kNegativeTime);
  bad = e;
  bad.ingest_ns = -5;
  EXPECT_EQ(v.Check(bad), RejectReason::kNegativeIngestTime);
  bad = e;
  bad.proc.comm = "abcde";
  EXPECT_EQ(v.Check(bad), RejectReason::kCommTooLong);
  bad = e;
  bad.stream = "123456789";
  EXPECT_EQ(v.Check(bad), RejectReason::kStreamTooLong);
  bad = e;
  bad.host = "host";
  EXPECT_EQ(v.Check(bad), RejectReason::kHostTooLong);
  bad = e;
  bad.proc.exe = "/bin/sh";
  EXPECT_EQ(v.Check(bad), RejectReason::kExeTooLong);
  bad = e;
  bad.path = "/a/very/long/path";
  EXPECT_EQ(v.Check(bad), RejectReason::kPathTooLong);
  bad = e;
  bad.proc.comm = std::string("a\0b", 3);
  EXPECT_EQ(v.Check(bad), RejectReason::kEmbeddedNul);
}

TEST(EventValidatorTest, CountsByReasonAcrossThreads) {
  EventValidator v;
  const Event good = Syscall(Arch::kX86_64, 2);
  const Event bad = Syscall(Arch::kX86_64, -7);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        (void)v.Validate(good);
        (void)v.Validate(bad);
      }
    });
  }
  for (auto& t : threads) t.join();
  const ValidatorStats s = v.Stats();
  EXPECT_EQ(s.accepted, 10000u);
  EXPECT_EQ(s.rejected, 10000u);
  EXPECT_EQ(s.by_reason[static_cast<size_t>(RejectReason::kSyscallNrOutOfRange)], 10000u);
  EXPECT_EQ(s.by_reason[static_cast<size_t>(RejectReason::kNone)], 0u);
}

TEST(EventValidatorTest, ReasonNamesAreDistinctAndKnown) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kRejectReasonCount; ++i) {
    const std::string_view n = RejectReasonName(static_cast<RejectReason>(i));
    EXPECT_NE(n, "unknown") << i;
    EXPECT_TRUE(names.insert(n).second) << "duplicate name " << n;
  }
  EXPECT_EQ(RejectReasonName(RejectReason::kSyscallNrOutOfRange), "syscall_nr_out_of_range");
}

TEST(EventValidatorTest, DescribeRejectNamesTheEventAndReason) {
  Event e = Syscall(Arch::kX86_64, 999);
  e.seq = 42;
  const std::string m = DescribeReject(RejectReason::kSyscallNrOutOfRange, e);
  EXPECT_NE(m.find("seq=42"), std::string::npos) << m;
  EXPECT_NE(m.find("adfa/train/0001"), std::string::npos) << m;
  EXPECT_NE(m.find("syscall_nr_out_of_range"), std::string::npos) << m;
  EXPECT_NE(m.find("nr 999"), std::string::npos) << m;
}

}  // namespace
}  // namespace vigil::pipeline
