#pragma once

// Sinks: where the pipeline's JSON Lines output (events, verdicts, decisions) goes. A Sink takes
// one JSON document per Write, without its newline; the sink adds it. Lines are never split:
// a line is written whole or reported as not written.
//
// Threading: Write and Flush from one thread at a time (the pipeline's output stage owns its
// sink); Stats() from any thread.
//
// The process should ignore SIGPIPE (the vigil binary does), so that a closed pipe is a write
// error (kUnavailable, counted) rather than death.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::pipeline {

struct SinkStats {
  uint64_t lines_written = 0;  // handed to the OS (buffered lines are not yet counted)
  uint64_t bytes_written = 0;  // newlines included
  uint64_t write_errors = 0;   // failed write(2)/rename(2)/open(2) calls
  uint64_t rotations = 0;      // FileSink only
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Takes one line. A line containing '\n' is refused with kInvalidArgument (it would become
  // two lines). On OK the line is buffered or written and
  // will reach the OS by the next Flush. On an I/O error (kUnavailable, kResourceExhausted, ...)
  // this line was not taken; lines taken earlier stay buffered and are retried on the next
  // Write or Flush.
  virtual core::Status Write(std::string_view json_line) = 0;
  // Hands every buffered line to the OS (write(2); no fsync). Errors as for Write.
  virtual core::Status Flush() = 0;
  virtual SinkStats Stats() const = 0;
};

// Shared counters and the write-buffer logic of the fd-based sinks.
class BufferedFdSink : public Sink {
 public:
  core::Status Write(std::string_view json_line) override;
  core::Status Flush() override;
  SinkStats Stats() const override;

 protected:
  BufferedFdSink(std::string name, size_t buffer_bytes);
  // Writes out buffer_ to fd_ (loops on partial writes and EINTR).
  core::Status FlushBuffer();
  // Hook for FileSink: called before `line_bytes` (newline included) are buffered.
  virtual core::Status BeforeLine(size_t line_bytes);

  std::string name_;  // for messages: "stdout", "fd 5", the file path
  int fd_ = -1;
  size_t buffer_bytes_;
  std::string buffer_;
  uint64_t buffered_lines_ = 0;
  std::atomic<uint64_t> lines_written_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> rotations_{0};
};

// Writes to a file descriptor it does not own (stdout by default; a pipe or temp file in tests),
// buffering up to `buffer_bytes`. The destructor flushes (best effort; errors are counted).
class StdoutSink final : public BufferedFdSink {
 public:
  explicit StdoutSink(int fd = 1, size_t buffer_bytes = 64 * 1024);
  ~StdoutSink() override;
};

struct FileSinkOptions {
  // Rotate before a line would take the file past this size (0: never rotate). A line longer
  // than this gets a file to itself.
  uint64_t max_bytes = 64ull << 20;
  // Rotated files kept: PATH.1 (newest) ... PATH.keep (oldest); older ones are deleted.
  // 0 keeps none (the full file is deleted on rotation).
  uint32_t keep = 5;
  size_t buffer_bytes = 64 * 1024;
};

// Appends JSON Lines to PATH (created 0640 if absent), rotating by size:
// PATH -> PATH.1 -> PATH.2 ... -> PATH.keep. The destructor flushes (best effort).
class FileSink final : public BufferedFdSink {
 public:
  // Fails with the open(2) error naming the path (kNotFound when the directory is missing,
  // kPermissionDenied, kUnavailable).
  static core::Result<std::unique_ptr<FileSink>> Open(const std::string& path,
                                                      const FileSinkOptions& options = {});
  ~FileSink() override;

 private:
  FileSink(const std::string& path, const FileSinkOptions& options, int fd, uint64_t size);
  core::Status BeforeLine(size_t line_bytes) override;
  core::Status Rotate();

  const std::string path_;
  const FileSinkOptions options_;
  uint64_t file_bytes_ = 0;  // on disk plus buffered
};

// Discards lines, counting them ("null": for benchmarks and dry runs).
class NullSink final : public Sink {
 public:
  core::Status Write(std::string_view json_line) override;
  core::Status Flush() override { return core::Status::Ok(); }
  SinkStats Stats() const override;

 private:
  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> bytes_{0};
};

// Builds a sink from a command-line spec: "stdout", "null", or "file:PATH" (FileSink with
// `file_options`). Anything else is kInvalidArgument with a message naming the spec and the
// accepted forms (a usage error: exit code 2). Errors of FileSink::Open pass through.
core::Result<std::unique_ptr<Sink>> MakeSink(std::string_view spec,
                                             const FileSinkOptions& file_options = {});

}  // namespace vigil::pipeline
