// Crash tests: a child process appends and acknowledges with fsync-always and reports each
// durable step through a pipe; the parent SIGKILLs it mid-stream and checks what a reopen
// recovers against what the child was told was durable.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pipeline/spool.h"
#include "test_util.h"

namespace vigil::pipeline {
namespace {

using testing::AppendFile;
using testing::ListDir;
using testing::TempDir;

// One pipe message: 'D' seq = Append(seq) returned (durable); 'A' seq = Ack(seq) returned.
struct Message {
  char type;
  uint64_t seq;
};
constexpr size_t kMessageSize = 9;  // < PIPE_BUF, so each write is atomic

void Send(int fd, char type, uint64_t seq) {
  char buf[kMessageSize];
  buf[0] = type;
  std::memcpy(buf + 1, &seq, 8);
  if (write(fd, buf, sizeof(buf)) != static_cast<ssize_t>(sizeof(buf))) _exit(10);
}

enum class Read { kMessage, kEof, kTimeout };

Read Receive(int fd, Message* m, std::chrono::steady_clock::time_point deadline) {
  char buf[kMessageSize];
  size_t got = 0;
  while (got < sizeof(buf)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Read::kTimeout;
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Read::kTimeout;
    const ssize_t n = read(fd, buf + got, sizeof(buf) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Read::kEof;
    got += static_cast<size_t>(n);
  }
  m->type = buf[0];
  std::memcpy(&m->seq, buf + 1, 8);
  return Read::kMessage;
}

std::string PayloadFor(uint64_t seq) {
  std::string p = "rec-" + std::to_string(seq) + "-";
  p.resize(24 + seq % 61, static_cast<char>('A' + seq % 26));
  return p;
}

SpoolOptions CrashOptions() {
  SpoolOptions o;
  o.sync = SyncMode::kAlways;
  o.segment_bytes = 2048;  // many segments, so deletion happens while the child runs
  return o;
}

// Child: append forever, acknowledging with a lag, reporting every step after it returned.
[[noreturn]] void AppendForever(const std::string& dir, int out_fd, uint64_t ack_every,
                                uint64_t ack_lag) {
  auto spool = Spool::Open(dir, CrashOptions(), nullptr, nullptr);
  if (!spool.has_value()) _exit(3);
  for (;;) {
    const uint64_t next = (*spool)->next_seq();
    auto seq = (*spool)->Append(PayloadFor(next));
    if (!seq.has_value() || *seq != next) _exit(4);
    Send(out_fd, 'D', *seq);
    if (*seq % ack_every == 0 && *seq > ack_lag) {
      if (!(*spool)->Ack(*seq - ack_lag).ok()) _exit(5);
      Send(out_fd, 'A', *seq - ack_lag);
    }
  }
}

struct ChildRun {
  std::set<uint64_t> durable;
  uint64_t acked = 0;  // the highest acknowledgement the child reported
};

// Forks a child running `body(write_fd)`, reads its messages until `stop(run)` holds, SIGKILLs
// it, then drains whatever it wrote before dying.
template <typename Body, typename Stop>
void RunAndKill(Body body, Stop stop, ChildRun* run) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    body(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Message m{};
  bool killed = false;
  for (;;) {
    if (!killed && stop(*run)) {
      ASSERT_EQ(kill(pid, SIGKILL), 0);
      killed = true;
    }
    const Read r = Receive(fds[0], &m, deadline);
    if (r == Read::kTimeout) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(fds[0]);
      FAIL() << "child made no progress before the deadline";
    }
    if (r == Read::kEof) break;
    if (m.type == 'D') {
      EXPECT_TRUE(run->durable.insert(m.seq).second) << "seq reported twice: " << m.seq;
    } else if (m.type == 'A') {
      EXPECT_GE(m.seq, run->acked);
      run->acked = m.seq;
    }
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(killed) << "child ended by itself, status " << status;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
}

TEST(SpoolCrashTest, KilledWriterLosesNothingDurableAndDuplicatesNothing) {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t target = 120 + rng() % 120;
  const uint64_t ack_every = 5 + rng() % 10;
  const uint64_t ack_lag = 1 + rng() % 40;
  SCOPED_TRACE("target " + std::to_string(target) + " ack_every " + std::to_string(ack_every) +
               " ack_lag " + std::to_string(ack_lag));
  TempDir tmp;
  const std::string dir = tmp.Join("spool");
  ChildRun run;
  RunAndKill([&](int fd) { AppendForever(dir, fd, ack_every, ack_lag); },
             [&](const ChildRun& r) { return r.durable.size() >= target; }, &run);
  if (HasFatalFailure()) return;
  ASSERT_GE(run.durable.size(), target);
  const uint64_t max_durable = *run.durable.rbegin();
  ASSERT_EQ(run.durable.size(), max_durable) << "durable seqs are 1..N without gaps";

  // A torn half-record at the end of the last segment, as a crash inside write(2) leaves it:
  // a plausible header promising 100 bytes, then only 30 of them.
  const auto segs = ListDir(dir, ".seg");
  ASSERT_FALSE(segs.empty());
  const std::string last_seg = dir + "/" + segs.back();
  std::string torn(16, '\0');
  const uint32_t len = 100;
  const uint64_t seq = max_durable + 5;
  std::memcpy(&torn[4], &len, 4);
  std::memcpy(&torn[8], &seq, 8);
  torn += std::string(30, 'z');
  AppendFile(last_seg, torn);

  std::vector<uint64_t> replayed;
  auto replay = [&](uint64_t s, std::string_view rec) {
    replayed.push_back(s);
    EXPECT_EQ(rec, PayloadFor(s)) << "payload of seq " << s;
    return core::Status::Ok();
  };
  RecoveryReport report;
  {
    auto spool = Spool::Open(dir, CrashOptions(), replay, &report);
    ASSERT_TRUE(spool.has_value()) << spool.error().ToString();

    // The watermark survived: at least what the child heard back, never beyond what it wrote.
    EXPECT_GE(report.acked_seq, run.acked);
    EXPECT_LE(report.acked_seq, max_durable + 1);

    // The torn tail is reported where it is and cut off.
    ASSERT_FALSE(report.damage.empty());
    const SpoolDamage& d = report.damage.back();
    EXPECT_EQ(d.kind, SpoolDamageKind::kTornTail);
    EXPECT_EQ(d.segment, last_seg);
    EXPECT_TRUE(d.truncated);
    EXPECT_GE(d.bytes, torn.size());
    EXPECT_EQ(report.corrupt_records, 0u);

    // Every durable, unacknowledged record comes back exactly once, in order, and nothing
    // acknowledged does. At most one more (appended, killed before it was reported) may follow.
    for (size_t i = 1; i < replayed.size(); ++i) ASSERT_EQ(replayed[i], replayed[i - 1] + 1);
    const uint64_t first_expected = report.acked_seq + 1;
    if (first_expected <= max_durable) {
      ASSERT_FALSE(replayed.empty());
      EXPECT_EQ(replayed.front(), first_expected);
      EXPECT_GE(replayed.back(), max_durable);
    }
    if (!replayed.empty()) {
      EXPECT_LE(replayed.back(), max_durable + 1);
    }
    EXPECT_EQ(report.records_replayed, replayed.size());

    // Appends continue after the repaired tail.
    const uint64_t after = replayed.empty() ? report.acked_seq + 1 : replayed.back() + 1;
    EXPECT_EQ(report.next_seq, std::max(after, report.acked_seq + 1));
    auto s = (*spool)->Append(PayloadFor(report.next_seq));
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(*s, report.next_seq);
  }
  const std::vector<uint64_t> first_replay = replayed;
  replayed.clear();
  RecoveryReport again;
  auto spool = Spool::Open(dir, CrashOptions(), replay, &again);
  ASSERT_TRUE(spool.has_value());
  EXPECT_TRUE(again.clean()) << again.damage.size() << " damage entries on the second open";
  ASSERT_EQ(replayed.size(), first_replay.size() + 1);
  EXPECT_TRUE(std::equal(first_replay.begin(), first_replay.end(), replayed.begin()));
}

TEST(SpoolCrashTest, AckWatermarkSurvivesKill) {
  TempDir tmp;
  const std::string dir = tmp.Join("spool");
  int hold[2];
  ASSERT_EQ(pipe(hold), 0);
  ChildRun run;
  RunAndKill(
      [&](int fd) {
        close(hold[1]);
        auto spool = Spool::Open(dir, CrashOptions(), nullptr, nullptr);
        if (!spool.has_value()) _exit(3);
        for (uint64_t i = 1; i <= 50; ++i) {
          if (!(*spool)->Append(PayloadFor(i)).has_value()) _exit(4);
          Send(fd, 'D', i);
        }
        if (!(*spool)->Ack(30).ok()) _exit(5);
        Send(fd, 'A', 30);
        char c;
        while (read(hold[0], &c, 1) != 0) {  // wait, with the spool open, to be killed
        }
        _exit(6);
      },
      [](const ChildRun& r) { return r.acked == 30; }, &run);
  close(hold[0]);
  close(hold[1]);
  if (HasFatalFailure()) return;
  std::vector<uint64_t> replayed;
  RecoveryReport report;
  auto spool = Spool::Open(
      dir, CrashOptions(),
      [&](uint64_t s, std::string_view) {
        replayed.push_back(s);
        return core::Status::Ok();
      },
      &report);
  ASSERT_TRUE(spool.has_value()) << spool.error().ToString();
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.acked_seq, 30u);
  ASSERT_EQ(replayed.size(), 20u);
  EXPECT_EQ(replayed.front(), 31u);
  EXPECT_EQ(replayed.back(), 50u);
  EXPECT_EQ(report.next_seq, 51u);
}

}  // namespace
}  // namespace vigil::pipeline
