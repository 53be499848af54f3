#include "agent/durable_output.h"

namespace vigil::agent {

core::Result<std::unique_ptr<DurableOutput>> DurableOutput::Open(
    const std::string& dir, const pipeline::SpoolOptions& options,
    std::vector<pipeline::Sink*> sinks, pipeline::RecoveryReport* report) {
  uint64_t last_replayed = 0;
  auto deliver = [&](uint64_t seq, std::string_view record) -> core::Status {
    for (pipeline::Sink* s : sinks) {
      VIGIL_RETURN_IF_ERROR(s->Write(record));
    }
    last_replayed = seq;
    return core::Status::Ok();
  };
  auto spool = pipeline::Spool::Open(dir, options, deliver, report);
  if (!spool.has_value()) return spool.error().WithContext("spool " + dir);
  std::unique_ptr<DurableOutput> out(new DurableOutput(std::move(spool).value(), std::move(sinks)));
  if (last_replayed != 0) {
    out->last_seq_ = last_replayed;
    VIGIL_RETURN_IF_ERROR(out->Flush());
  }
  return out;
}

core::Status DurableOutput::Write(std::string_view json_line) {
  auto seq = spool_->Append(json_line);
  if (!seq.has_value()) {
    ++stats_.write_errors;
    return seq.error();
  }
  last_seq_ = *seq;
  core::Status first;
  for (pipeline::Sink* s : sinks_) {
    core::Status st = s->Write(json_line);
    if (!st.ok()) {
      sink_failed_ = true;
      if (first.ok()) first = st;
    }
  }
  if (first.ok()) {
    ++stats_.lines_written;
    stats_.bytes_written += json_line.size() + 1;
  } else {
    ++stats_.write_errors;
  }
  return first;
}

core::Status DurableOutput::Flush() {
  core::Status first;
  for (pipeline::Sink* s : sinks_) {
    core::Status st = s->Flush();
    if (!st.ok() && first.ok()) first = st;
  }
  if (!first.ok() || sink_failed_) {
    return first.ok() ? core::Unavailable("a sink failed since the last flush; lines stay spooled")
                      : first;
  }
  if (last_seq_ > spool_->acked_seq()) VIGIL_RETURN_IF_ERROR(spool_->Ack(last_seq_));
  return core::Status::Ok();
}

pipeline::SinkStats DurableOutput::Stats() const { return stats_; }

}  // namespace vigil::agent
