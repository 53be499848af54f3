#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace vigil::core {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string_view SpdlogLevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// RFC 3339 UTC with microseconds: 2024-01-02T03:04:05.678901Z.
std::string FormatTimestamp(spdlog::log_clock::time_point tp) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  const auto secs = static_cast<std::time_t>(micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", std::string_view(buf, n), micros % 1'000'000);
}

// One JSON object per record. spdlog's pattern language cannot escape the message, so the record
// is built with nlohmann::json, which does.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::json j;
    j["ts"] = FormatTimestamp(msg.time);
    j["level"] = SpdlogLevelName(msg.level);
    j["logger"] = std::string_view(msg.logger_name.data(), msg.logger_name.size());
    j["msg"] = std::string_view(msg.payload.data(), msg.payload.size());
    j["thread"] = msg.thread_id;
    // Invalid UTF-8 in a message is replaced rather than thrown about.
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "unknown";
}

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  for (LogLevel l : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                     LogLevel::kError, LogLevel::kOff}) {
    if (name == LogLevelName(l)) {
      *out = l;
      return true;
    }
  }
  if (name == "warning") {
    *out = LogLevel::kWarn;
    return true;
  }
  return false;
}

std::string_view LogFormatName(LogFormat format) {
  switch (format) {
    case LogFormat::kText:
      return "text";
    case LogFormat::kJson:
      return "json";
  }
  return "unknown";
}

bool ParseLogFormat(std::string_view name, LogFormat* out) {
  for (LogFormat f : {LogFormat::kText, LogFormat::kJson}) {
    if (name == LogFormatName(f)) {
      *out = f;
      return true;
    }
  }
  return false;
}

Status InitLogging(LogLevel level, LogFormat format) {
  try {
    std::shared_ptr<spdlog::logger> logger;
    if (format == LogFormat::kJson) {
      // Colour codes would corrupt JSON lines.
      auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
      sink->set_formatter(std::make_unique<JsonFormatter>());
      logger = std::make_shared<spdlog::logger>("vigil", std::move(sink));
    } else {
      auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
      sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
          "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc));
      logger = std::make_shared<spdlog::logger>("vigil", std::move(sink));
    }
    logger->set_level(ToSpdlog(level));
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
    return Status::Ok();
  } catch (const std::exception& e) {
    return Internal(fmt::format("initialising logging: {}", e.what()));
  }
}

}  // namespace vigil::core
