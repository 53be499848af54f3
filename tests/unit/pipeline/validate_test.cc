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

size_t Rejected(const EventValidator& v, RejectReason r) {
  return v.Stats().by_reason[static_cast<size_t>(r)];
}

TEST(EventValidatorTest, RunsAreCheckedAndCountedCallByCall) {
  EventValidator v;
  Event run = Syscall(Arch::kX86_64, 39);
  run.syscall_run = {0, 1, 39};
  EXPECT_EQ(v.Check(run), RejectReason::kNone);
  EXPECT_EQ(v.Validate(run), RejectReason::kNone);
  EXPECT_EQ(v.Stats().accepted, 3u);  // one per call

  run.syscall_run = {0, 999, 39};  // a call out of range makes the whole event bad for Check
  EXPECT_EQ(v.Check(run), RejectReason::kSyscallNrOutOfRange);
  EXPECT_EQ(v.Validate(run), RejectReason::kSyscallNrOutOfRange);
  EXPECT_EQ(Rejected(v, RejectReason::kSyscallNrOutOfRange), 3u);

  Event open = OfKind(EventKind::kFileOpen);
  open.path = "/etc/passwd";
  open.syscall_run = {2};
  EXPECT_EQ(v.Check(open), RejectReason::kRunNotSyscall);
}

TEST(EventValidatorTest, ValidateRunDropsOnlyTheBadCallsOfARun) {
  int unassigned = -1;
  for (int nr = 0; nr < core::kMaxSyscallNr; ++nr) {
    if (core::SyscallName(Arch::kX86_64, nr).empty()) {
      unassigned = nr;
      break;
    }
  }
  ASSERT_GE(unassigned, 0);
  EventValidator v;
  Event run = Syscall(Arch::kX86_64, 999);
  run.syscall_run = {0, 999, 1, unassigned, 3, -5, 999};
  EXPECT_EQ(v.ValidateRun(&run), RejectReason::kNone);
  EXPECT_EQ(run.syscall_run, (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(run.syscall.nr, 3);  // the new last call
  const ValidatorStats s = v.Stats();
  EXPECT_EQ(s.accepted, 3u);
  EXPECT_EQ(Rejected(v, RejectReason::kSyscallNrOutOfRange), 3u);
  EXPECT_EQ(Rejected(v, RejectReason::kSyscallNrUnassigned), 1u);
  EXPECT_EQ(s.rejected, 4u);

  // No good call left: the first reason, every call counted, the run left as it was.
  Event bad = Syscall(Arch::kX86_64, 999);
  bad.syscall_run = {unassigned, 999};
  EXPECT_EQ(v.ValidateRun(&bad), RejectReason::kSyscallNrUnassigned);
  EXPECT_EQ(bad.syscall_run.size(), 2u);
  EXPECT_EQ(v.Stats().rejected, 6u);

  // The rest of the event is checked once, and counted for every call that remains.
  Event long_comm = Syscall(Arch::kX86_64, 1);
  long_comm.proc.comm = std::string(100, 'x');
  long_comm.syscall_run = {0, 1, 999};
  EXPECT_EQ(v.ValidateRun(&long_comm), RejectReason::kCommTooLong);
  EXPECT_EQ(Rejected(v, RejectReason::kCommTooLong), 2u);
  EXPECT_EQ(Rejected(v, RejectReason::kSyscallNrOutOfRange), 5u);  // its 999 too

  // An unknown arch rejects the whole run under that reason; events without a run are Validate.
  Event arch = Syscall(Arch::kUnknown, 1);
  arch.syscall_run = {0, 1};
  EXPECT_EQ(v.ValidateRun(&arch), RejectReason::kSyscallArchUnknown);
  EXPECT_EQ(Rejected(v, RejectReason::kSyscallArchUnknown), 2u);
  Event one = Syscall(Arch::kX86_64, 0);
  EXPECT_EQ(v.ValidateRun(&one), RejectReason::kNone);
  EXPECT_EQ(v.Stats().accepted, 4u);
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
