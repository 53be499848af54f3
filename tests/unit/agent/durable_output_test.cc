#include "agent/durable_output.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vigil::agent {
namespace {

namespace fs = std::filesystem;

// Records lines; can be told to fail.
class FakeSink final : public pipeline::Sink {
 public:
  core::Status Write(std::string_view line) override {
    if (fail_writes) return core::Unavailable("fake sink down");
    pending.emplace_back(line);
    return core::Status::Ok();
  }
  core::Status Flush() override {
    if (fail_flush) return core::Unavailable("fake sink cannot flush");
    lines.insert(lines.end(), pending.begin(), pending.end());
    pending.clear();
    return core::Status::Ok();
  }
  pipeline::SinkStats Stats() const override { return {}; }
  bool fail_writes = false;
  bool fail_flush = false;
  std::vector<std::string> pending;
  std::vector<std::string> lines;
};

class DurableOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vigil-durable-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DurableOutputTest, FlushedLinesAreNotDeliveredAgain) {
  FakeSink sink;
  {
    auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&sink}, nullptr);
    ASSERT_TRUE(out.has_value()) << out.error().ToString();
    ASSERT_TRUE((*out)->Write("a").ok());
    ASSERT_TRUE((*out)->Write("b").ok());
    ASSERT_TRUE((*out)->Flush().ok());
  }
  FakeSink again;
  pipeline::RecoveryReport report;
  auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&again}, &report);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(report.records_replayed, 0u);
  EXPECT_TRUE(again.lines.empty());
  EXPECT_EQ(sink.lines, (std::vector<std::string>{"a", "b"}));
}

TEST_F(DurableOutputTest, UnflushedLinesAreRedeliveredAfterRestart) {
  FakeSink sink;
  {
    auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&sink}, nullptr);
    ASSERT_TRUE(out.has_value());
    ASSERT_TRUE((*out)->Write("a").ok());
    ASSERT_TRUE((*out)->Flush().ok());
    sink.fail_flush = true;
    ASSERT_TRUE((*out)->Write("b").ok());
    ASSERT_TRUE((*out)->Write("c").ok());
    EXPECT_FALSE((*out)->Flush().ok());  // "b" and "c" never reached the sink's destination
  }
  FakeSink again;
  pipeline::RecoveryReport report;
  auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&again}, &report);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(report.records_replayed, 2u);
  EXPECT_EQ(again.lines, (std::vector<std::string>{"b", "c"}));
  // Once re-delivered and flushed, they are acknowledged.
  FakeSink third;
  auto out3 = (out->reset(), DurableOutput::Open((dir_ / "spool").string(), {}, {&third}, nullptr));
  ASSERT_TRUE(out3.has_value());
  EXPECT_TRUE(third.lines.empty());
}

TEST_F(DurableOutputTest, FailingSinkKeepsLinesSpooled) {
  FakeSink sink;
  {
    auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&sink}, nullptr);
    ASSERT_TRUE(out.has_value());
    sink.fail_writes = true;
    EXPECT_FALSE((*out)->Write("lost-by-sink").ok());
    sink.fail_writes = false;
    ASSERT_TRUE((*out)->Write("next").ok());
    EXPECT_FALSE((*out)->Flush().ok()) << "a failed line must not be acknowledged";
  }
  FakeSink again;
  auto out = DurableOutput::Open((dir_ / "spool").string(), {}, {&again}, nullptr);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(again.lines, (std::vector<std::string>{"lost-by-sink", "next"}));
}

}  // namespace
}  // namespace vigil::agent
