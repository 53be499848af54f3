#pragma once

// Status and Result<T>: how Vigil reports expected failures (bad input, missing kernel feature,
// I/O, unreachable peer). Our code does not throw. Result<T> keeps the member names of
// std::expected (has_value, value, error, value_or) so that moving to it later is a rename.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vigil::core {

// A small canonical set of codes, after abseil's.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed (bad flag, bad file content)
  kNotFound,            // a named file, key or object does not exist
  kAlreadyExists,
  kFailedPrecondition,  // the system is not in a state where the call can work (not root, no BTF)
  kOutOfRange,          // a value or version beyond what this build supports
  kUnavailable,         // a peer or resource is transiently unreachable
  kDataLoss,            // stored data is corrupt or truncated
  kDeadlineExceeded,
  kResourceExhausted,
  kPermissionDenied,
  kInternal,            // an invariant broke; a bug
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: events.jsonl:3: missing field 'kind'"
  std::string ToString() const;

  // Prepends context: Status(kNotFound, "x").WithContext("loading model") ->
  // "loading model: x".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }

// The code for an errno value of a failed system call: ENOENT -> kNotFound, EACCES/EPERM ->
// kPermissionDenied, ENOSPC/EDQUOT -> kResourceExhausted, anything else -> kUnavailable.
StatusCode StatusCodeFromErrno(int err);
// "<message>: <strerror(err)>" with the code above.
Status ErrnoError(int err, std::string message);

// Holds either a T or a non-OK Status. Constructing from an OK Status is a bug (asserted) and
// is turned into kInternal in release builds.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok());
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result from OK status");
  }

  bool has_value() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Status& error() const { return std::get<Status>(v_); }
  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace vigil::core

// Propagates a non-OK Status from an expression returning Status.
#define VIGIL_RETURN_IF_ERROR(expr)                     \
  do {                                                  \
    ::vigil::core::Status vigil_status_ = (expr);       \
    if (!vigil_status_.ok()) return vigil_status_;      \
  } while (0)

#define VIGIL_CONCAT_INNER_(a, b) a##b
#define VIGIL_CONCAT_(a, b) VIGIL_CONCAT_INNER_(a, b)
// VIGIL_ASSIGN_OR_RETURN(auto x, MakeX()); propagates the error of a Result<T>.
#define VIGIL_ASSIGN_OR_RETURN(lhs, expr) \
  VIGIL_ASSIGN_OR_RETURN_IMPL_(VIGIL_CONCAT_(vigil_result_, __LINE__), lhs, expr)
#define VIGIL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.has_value()) return tmp.error();          \
  lhs = std::move(tmp).value()
