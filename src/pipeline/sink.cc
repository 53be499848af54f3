#include "pipeline/sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vigil::pipeline {
namespace {

using core::Status;

Status ErrnoStatus(std::string_view what, const std::string& name, int err) {
  return core::ErrnoError(err, "sink '" + name + "': " + std::string(what));
}

Status NewlineError(const std::string& name) {
  return core::InvalidArgument("sink '" + name + "': line contains a newline");
}

bool HasNewline(std::string_view s) { return std::memchr(s.data(), '\n', s.size()) != nullptr; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// BufferedFdSink

BufferedFdSink::BufferedFdSink(std::string name, size_t buffer_bytes)
    : name_(std::move(name)), buffer_bytes_(std::max<size_t>(buffer_bytes, 1)) {
  buffer_.reserve(buffer_bytes_);
}

Status BufferedFdSink::Write(std::string_view json_line) {
  if (HasNewline(json_line)) return NewlineError(name_);
  const size_t need = json_line.size() + 1;
  if (!buffer_.empty() && buffer_.size() + need > buffer_bytes_) {
    VIGIL_RETURN_IF_ERROR(FlushBuffer());
  }
  VIGIL_RETURN_IF_ERROR(BeforeLine(need));
  buffer_.append(json_line);
  buffer_.push_back('\n');
  ++buffered_lines_;
  return Status::Ok();
}

Status BufferedFdSink::Flush() { return FlushBuffer(); }

Status BufferedFdSink::BeforeLine(size_t /*line_bytes*/) { return Status::Ok(); }

Status BufferedFdSink::FlushBuffer() {
  if (buffer_.empty()) return Status::Ok();
  size_t done = 0;
  Status status;
  if (fd_ < 0) {
    status = core::Unavailable("sink '" + name_ + "': not open");
  }
  while (status.ok() && done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoStatus("write", name_, errno);
      break;
    }
    done += static_cast<size_t>(n);
  }
  bytes_written_.fetch_add(done, std::memory_order_relaxed);
  if (status.ok()) {
    lines_written_.fetch_add(buffered_lines_, std::memory_order_relaxed);
    buffered_lines_ = 0;
    buffer_.clear();
    return status;
  }
  // Keep the unwritten rest (a partly written line continues where it stopped, so the byte
  // stream still holds whole lines once a retry succeeds).
  const auto complete =
      static_cast<uint64_t>(std::count(buffer_.begin(), buffer_.begin() + done, '\n'));
  lines_written_.fetch_add(complete, std::memory_order_relaxed);
  buffered_lines_ -= complete;
  buffer_.erase(0, done);
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  return status;
}

SinkStats BufferedFdSink::Stats() const {
  SinkStats s;
  s.lines_written = lines_written_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.rotations = rotations_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------------------------
// StdoutSink

StdoutSink::StdoutSink(int fd, size_t buffer_bytes)
    : BufferedFdSink(fd == 1 ? "stdout" : "fd " + std::to_string(fd), buffer_bytes) {
  fd_ = fd;
}

StdoutSink::~StdoutSink() { (void)FlushBuffer(); }

// ---------------------------------------------------------------------------------------------
// FileSink

namespace {

int OpenForAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

}  // namespace

core::Result<std::unique_ptr<FileSink>> FileSink::Open(const std::string& path,
                                                       const FileSinkOptions& options) {
  if (path.empty()) return core::InvalidArgument("file sink: empty path");
  const int fd = OpenForAppend(path);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus("stat", path, err);
  }
  return std::unique_ptr<FileSink>(
      new FileSink(path, options, fd, static_cast<uint64_t>(st.st_size)));
}

FileSink::FileSink(const std::string& path, const FileSinkOptions& options, int fd, uint64_t size)
    : BufferedFdSink(path, options.buffer_bytes),
      path_(path),
      options_(options),
      file_bytes_(size) {
  fd_ = fd;
}

FileSink::~FileSink() {
  (void)FlushBuffer();
  if (fd_ >= 0) ::close(fd_);
}

Status FileSink::BeforeLine(size_t line_bytes) {
  if (fd_ < 0) {
    // A previous rotation could not reopen the file; try again.
    fd_ = OpenForAppend(path_);
    if (fd_ < 0) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      return ErrnoStatus("reopen", path_, errno);
    }
    file_bytes_ = 0;
  }
  if (options_.max_bytes > 0 && file_bytes_ > 0 && file_bytes_ + line_bytes > options_.max_bytes) {
    VIGIL_RETURN_IF_ERROR(FlushBuffer());  // what is buffered belongs to the current file
    VIGIL_RETURN_IF_ERROR(Rotate());
  }
  file_bytes_ += line_bytes;
  return Status::Ok();
}

Status FileSink::Rotate() {
  auto fail = [this](std::string_view what, const std::string& name) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return ErrnoStatus(what, name, errno);
  };
  if (options_.keep == 0) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return fail("remove", path_);
  } else {
    for (uint32_t i = options_.keep - 1; i >= 1; --i) {
      const std::string from = path_ + "." + std::to_string(i);
      const std::string to = path_ + "." + std::to_string(i + 1);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
        return fail("rename to " + to, from);
      }
    }
    const std::string first = path_ + ".1";
    if (::rename(path_.c_str(), first.c_str()) != 0) return fail("rename to " + first, path_);
  }
  ::close(fd_);
  fd_ = OpenForAppend(path_);
  if (fd_ < 0) return fail("reopen", path_);
  file_bytes_ = 0;
  rotations_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// NullSink and MakeSink

Status NullSink::Write(std::string_view json_line) {
  if (HasNewline(json_line)) return NewlineError("null");
  lines_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(json_line.size() + 1, std::memory_order_relaxed);
  return Status::Ok();
}

SinkStats NullSink::Stats() const {
  SinkStats s;
  s.lines_written = lines_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_.load(std::memory_order_relaxed);
  return s;
}

core::Result<std::unique_ptr<Sink>> MakeSink(std::string_view spec,
                                             const FileSinkOptions& file_options) {
  constexpr std::string_view kFilePrefix = "file:";
  if (spec == "stdout") return std::unique_ptr<Sink>(std::make_unique<StdoutSink>());
  if (spec == "null") return std::unique_ptr<Sink>(std::make_unique<NullSink>());
  if (spec.substr(0, kFilePrefix.size()) == kFilePrefix) {
    const std::string path(spec.substr(kFilePrefix.size()));
    if (path.empty()) {
      return core::InvalidArgument("sink spec 'file:' has an empty path; expected file:PATH");
    }
    VIGIL_ASSIGN_OR_RETURN(auto sink, FileSink::Open(path, file_options));
    return std::unique_ptr<Sink>(std::move(sink));
  }
  return core::InvalidArgument("sink spec '" + std::string(spec) +
                               "' is not recognised; expected 'stdout', 'null' or 'file:PATH'");
}

}  // namespace vigil::pipeline
