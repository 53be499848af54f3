#pragma once

// A sink that keeps every line it gets, parsed as JSON, for assertions.

#include <mutex>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/sink.h"

namespace vigil::agent::testing {

class CollectSink final : public pipeline::Sink {
 public:
  core::Status Write(std::string_view line) override {
    std::lock_guard<std::mutex> l(mu);
    lines.push_back(nlohmann::json::parse(line));
    return core::Status::Ok();
  }
  core::Status Flush() override { return core::Status::Ok(); }
  pipeline::SinkStats Stats() const override { return {}; }

  std::mutex mu;
  std::vector<nlohmann::json> lines;
};

}  // namespace vigil::agent::testing
