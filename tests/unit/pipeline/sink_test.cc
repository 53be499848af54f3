#include "pipeline/sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace vigil::pipeline {
namespace {

using testing::ListDir;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    EXPECT_NE(nl, std::string::npos) << "text does not end with a newline";
    if (nl == std::string::npos) break;
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string Line(int i) {
  std::string s = "{\"n\":" + std::to_string(i) + ",\"pad\":\"";
  s.append(static_cast<size_t>(i % 7), 'x');
  return s + "\"}";
}

std::string ReadAllAvailable(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(StdoutSinkTest, WritesWholeLinesToTheGivenFd) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    StdoutSink sink(fds[1], 16);
    ASSERT_TRUE(sink.Write("{\"a\":1}").ok());
    ASSERT_TRUE(sink.Write("{\"b\":2}").ok());
    EXPECT_EQ(sink.Stats().lines_written, 0u) << "still buffered";
    ASSERT_TRUE(sink.Write("{\"c\":3}").ok());  // does not fit: the first two go out
    EXPECT_EQ(sink.Stats().lines_written, 2u);
    ASSERT_TRUE(sink.Flush().ok());
    const SinkStats s = sink.Stats();
    EXPECT_EQ(s.lines_written, 3u);
    EXPECT_EQ(s.bytes_written, 24u);
    EXPECT_EQ(s.write_errors, 0u);
  }
  close(fds[1]);
  EXPECT_EQ(ReadAllAvailable(fds[0]), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
  close(fds[0]);
}

TEST(StdoutSinkTest, DestructorFlushes) {
  TempDir tmp;
  const std::string path = tmp.Join("out");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  {
    StdoutSink sink(fd);
    ASSERT_TRUE(sink.Write("x").ok());
  }
  close(fd);
  EXPECT_EQ(ReadFile(path), "x\n");
}

TEST(StdoutSinkTest, RefusesEmbeddedNewline) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  StdoutSink sink(fds[1]);
  const core::Status s = sink.Write("{\"a\":\n1}");
  EXPECT_EQ(s.code(), core::StatusCode::kInvalidArgument);
  ASSERT_TRUE(sink.Flush().ok());
  EXPECT_EQ(sink.Stats().lines_written, 0u);
  close(fds[0]);
  close(fds[1]);
}

TEST(StdoutSinkTest, WriteErrorIsReportedCountedAndKept) {
  TempDir tmp;
  const std::string path = tmp.Join("ro");
  WriteFile(path, "");
  const int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  StdoutSink sink(fd, 4);
  ASSERT_TRUE(sink.Write("abc").ok());
  const core::Status s = sink.Flush();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fd " + std::to_string(fd)), std::string::npos) << s.message();
  EXPECT_EQ(sink.Stats().write_errors, 1u);
  EXPECT_EQ(sink.Stats().lines_written, 0u);
  EXPECT_FALSE(sink.Write("defgh").ok()) << "the buffered line is retried first, and fails";
  close(fd);
}

TEST(FileSinkTest, RotatesWithoutLosingOrSplittingLines) {
  TempDir tmp;
  const std::string path = tmp.Join("events.jsonl");
  FileSinkOptions o;
  o.max_bytes = 100;
  o.keep = 64;  // enough to keep everything, so every line can be found
  o.buffer_bytes = 37;
  const int n = 200;
  {
    auto sink = FileSink::Open(path, o);
    ASSERT_TRUE(sink.has_value()) << sink.error().ToString();
    for (int i = 0; i < n; ++i) ASSERT_TRUE((*sink)->Write(Line(i)).ok()) << i;
    ASSERT_TRUE((*sink)->Flush().ok());
    EXPECT_EQ((*sink)->Stats().lines_written, static_cast<uint64_t>(n));
    EXPECT_GT((*sink)->Stats().rotations, 10u);
  }
  // Oldest is the highest suffix; read back in writing order.
  const auto files = ListDir(tmp.path(), "");
  std::vector<std::string> lines;
  const size_t rotated = files.size() - 1;
  for (size_t k = rotated; k >= 1; --k) {
    const std::string text = ReadFile(path + "." + std::to_string(k));
    EXPECT_LE(text.size(), o.max_bytes) << "file ." << k;
    EXPECT_FALSE(text.empty());
    for (auto& l : SplitLines(text)) lines.push_back(l);
  }
  const std::string current = ReadFile(path);
  EXPECT_LE(current.size(), o.max_bytes);
  for (auto& l : SplitLines(current)) lines.push_back(l);
  ASSERT_EQ(lines.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(lines[static_cast<size_t>(i)], Line(i));
}

TEST(FileSinkTest, KeepsOnlyKRotatedFiles) {
  TempDir tmp;
  const std::string path = tmp.Join("out.jsonl");
  FileSinkOptions o;
  o.max_bytes = 30;
  o.keep = 3;
  o.buffer_bytes = 1;
  {
    auto sink = FileSink::Open(path, o);
    ASSERT_TRUE(sink.has_value());
    // 10-byte lines ("line-0000" + newline): three per file.
    for (int i = 0; i < 30; ++i) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "line-%04d", i);
      ASSERT_TRUE((*sink)->Write(buf).ok());
    }
  }
  EXPECT_EQ(ListDir(tmp.path(), ""),
            (std::vector<std::string>{"out.jsonl", "out.jsonl.1", "out.jsonl.2", "out.jsonl.3"}));
  EXPECT_EQ(ReadFile(path), "line-0027\nline-0028\nline-0029\n");
  EXPECT_EQ(ReadFile(path + ".1"), "line-0024\nline-0025\nline-0026\n");
  EXPECT_EQ(ReadFile(path + ".3"), "line-0018\nline-0019\nline-0020\n");
}

TEST(FileSinkTest, KeepZeroDiscardsFullFiles) {
  TempDir tmp;
  const std::string path = tmp.Join("out.jsonl");
  FileSinkOptions o;
  o.max_bytes = 4;
  o.keep = 0;
  {
    auto sink = FileSink::Open(path, o);
    ASSERT_TRUE(sink.has_value());
    for (const char* l : {"aaa", "bbb", "ccc"}) ASSERT_TRUE((*sink)->Write(l).ok());
  }
  EXPECT_EQ(ListDir(tmp.path(), ""), (std::vector<std::string>{"out.jsonl"}));
  EXPECT_EQ(ReadFile(path), "ccc\n");
}

TEST(FileSinkTest, OversizedLineGetsAFileOfItsOwn) {
  TempDir tmp;
  const std::string path = tmp.Join("out.jsonl");
  FileSinkOptions o;
  o.max_bytes = 8;
  o.keep = 5;
  {
    auto sink = FileSink::Open(path, o);
    ASSERT_TRUE(sink.has_value());
    ASSERT_TRUE((*sink)->Write("ab").ok());
    ASSERT_TRUE((*sink)->Write("0123456789abcdef").ok());
    ASSERT_TRUE((*sink)->Write("cd").ok());
  }
  EXPECT_EQ(ReadFile(path + ".2"), "ab\n");
  EXPECT_EQ(ReadFile(path + ".1"), "0123456789abcdef\n");
  EXPECT_EQ(ReadFile(path), "cd\n");
}

TEST(FileSinkTest, AppendsToAnExistingFile) {
  TempDir tmp;
  const std::string path = tmp.Join("out.jsonl");
  WriteFile(path, "old\n");
  {
    auto sink = FileSink::Open(path);
    ASSERT_TRUE(sink.has_value());
    ASSERT_TRUE((*sink)->Write("new").ok());
  }
  EXPECT_EQ(ReadFile(path), "old\nnew\n");
}

TEST(FileSinkTest, MissingDirectoryIsNotFoundNamingThePath) {
  TempDir tmp;
  const std::string path = tmp.Join("nope/out.jsonl");
  auto sink = FileSink::Open(path);
  ASSERT_FALSE(sink.has_value());
  EXPECT_EQ(sink.error().code(), core::StatusCode::kNotFound);
  EXPECT_NE(sink.error().message().find(path), std::string::npos) << sink.error().message();
}

TEST(MakeSinkTest, ParsesKnownSpecs) {
  TempDir tmp;
  auto out = MakeSink("stdout");
  ASSERT_TRUE(out.has_value());
  auto null = MakeSink("null");
  ASSERT_TRUE(null.has_value());
  ASSERT_TRUE((*null)->Write("{}").ok());
  EXPECT_EQ((*null)->Stats().lines_written, 1u);
  EXPECT_EQ((*null)->Stats().bytes_written, 3u);
  const std::string path = tmp.Join("f.jsonl");
  {
    auto file = MakeSink("file:" + path);
    ASSERT_TRUE(file.has_value()) << file.error().ToString();
    ASSERT_TRUE((*file)->Write("{\"k\":1}").ok());
  }
  EXPECT_EQ(ReadFile(path), "{\"k\":1}\n");
}

TEST(MakeSinkTest, RejectsUnknownSpecsNamingThem) {
  for (const char* spec : {"", "bogus", "File:/tmp/x", "stdout ", "nats://x", "file:"}) {
    auto s = MakeSink(spec);
    ASSERT_FALSE(s.has_value()) << spec;
    EXPECT_EQ(s.error().code(), core::StatusCode::kInvalidArgument) << spec;
    EXPECT_NE(s.error().message().find("'" + std::string(spec) + "'"), std::string::npos)
        << s.error().message();
  }
  auto missing = MakeSink("file:/nonexistent-vigil-dir/x.jsonl");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), core::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil::pipeline
