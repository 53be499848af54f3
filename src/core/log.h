#pragma once

// Status logging through spdlog. Status logs go to stderr so that results written to stdout
// (events, verdicts, --json output) stay machine-readable. Components log with the spdlog free
// functions (spdlog::info(...)) once InitLogging() has installed the default logger.

#include <string_view>

#include "core/status.h"

namespace vigil::core {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };
enum class LogFormat {
  kText,  // "2024-01-02T03:04:05.678901Z info message" (coloured when stderr is a terminal)
  kJson,  // one JSON object per line: {"ts":..., "level":..., "logger":..., "msg":...}
};

// "trace", "debug", "info", "warn", "error", "off".
std::string_view LogLevelName(LogLevel level);
// Inverse of LogLevelName; also accepts "warning". Case-sensitive. False when unknown (*out is
// then untouched).
bool ParseLogLevel(std::string_view name, LogLevel* out);
// "text", "json".
std::string_view LogFormatName(LogFormat format);
bool ParseLogFormat(std::string_view name, LogFormat* out);

// Installs a logger named "vigil" writing to stderr as spdlog's default logger, replacing any
// earlier one (calling it again, e.g. after a config reload, is fine). Messages at warn or above
// are flushed at once. Thread-safe with respect to logging, but not with respect to concurrent
// InitLogging() calls. Fails (kInternal) only if spdlog cannot create the logger.
Status InitLogging(LogLevel level, LogFormat format);

}  // namespace vigil::core
