#pragma once

// At-least-once delivery of output lines: each line is appended to a durable spool before it is
// handed to the sinks, and acknowledged in the spool once every sink has flushed it. After a
// crash, Open() hands the lines that were never acknowledged to the sinks again before anything
// new, and reports what it found (torn or corrupt tails are skipped and reported, not fatal).

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "pipeline/sink.h"
#include "pipeline/spool.h"

namespace vigil::agent {

class DurableOutput final : public pipeline::Sink {
 public:
  // `sinks` must outlive the object. Fails as pipeline::Spool::Open does, or with the first
  // sink error while re-delivering recovered lines (they then stay unacknowledged).
  static core::Result<std::unique_ptr<DurableOutput>> Open(const std::string& dir,
                                                           const pipeline::SpoolOptions& options,
                                                           std::vector<pipeline::Sink*> sinks,
                                                           pipeline::RecoveryReport* report);

  // Spools the line, then writes it to every sink. A spool failure refuses the line (nothing
  // was written anywhere); a sink failure leaves the line spooled and unacknowledged.
  core::Status Write(std::string_view json_line) override;
  // Flushes every sink and, when all succeeded, acknowledges everything written so far.
  core::Status Flush() override;
  pipeline::SinkStats Stats() const override;

  const pipeline::Spool& spool() const { return *spool_; }

 private:
  DurableOutput(std::unique_ptr<pipeline::Spool> spool, std::vector<pipeline::Sink*> sinks)
      : spool_(std::move(spool)), sinks_(std::move(sinks)) {}

  std::unique_ptr<pipeline::Spool> spool_;
  std::vector<pipeline::Sink*> sinks_;
  uint64_t last_seq_ = 0;
  bool sink_failed_ = false;  // since the last successful Flush
  pipeline::SinkStats stats_;
};

}  // namespace vigil::agent
