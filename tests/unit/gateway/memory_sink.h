#pragma once

// A sink for gateway tests that keeps the lines written to it (thread-safe: the proxy's client
// threads and the telemetry thread write findings).

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/sink.h"

namespace vigil::gateway::testing {

class MemorySink final : public pipeline::Sink {
 public:
  core::Status Write(std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
    return core::Status::Ok();
  }
  core::Status Flush() override { return core::Status::Ok(); }
  pipeline::SinkStats Stats() const override { return {}; }
  std::vector<std::string> Lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace vigil::gateway::testing
