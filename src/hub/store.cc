#include "hub/store.h"

#include "hub/store_location.h"
#include "hub/store_postgres.h"
#include "hub/store_sqlite.h"

namespace vigil::hub {

core::Result<std::unique_ptr<Store>> Store::Open(const std::string& location,
                                                 const StoreOptions& options) {
  if (IsPostgresLocation(location)) return OpenPostgresStore(location, options);
  return SqliteStore::Open(location, options);
}

std::string_view EscalationStateName(EscalationState s) {
  switch (s) {
    case EscalationState::kPending:
      return "pending";
    case EscalationState::kApproved:
      return "approved";
    case EscalationState::kDenied:
      return "denied";
    case EscalationState::kTimedOut:
      return "timed_out";
  }
  return "pending";
}

std::optional<Verdict> EscalationRow::outcome() const {
  switch (state) {
    case EscalationState::kPending:
      return std::nullopt;
    case EscalationState::kApproved:
      return Verdict::kApprove;
    case EscalationState::kDenied:
      return Verdict::kDeny;
    case EscalationState::kTimedOut:
      return request.default_verdict;
  }
  return std::nullopt;
}

void ClassifyCheckpoint(CheckpointRow* row, const std::vector<CheckpointRow>& same,
                        const CheckpointRow* below, const CheckpointRow* above) {
  row->problem.clear();
  row->problem_detail.clear();
  auto named = [](const CheckpointRow& c) {
    return "checkpoint " + std::to_string(c.seq) + " (covers " + std::to_string(c.covers) +
           ", chain hash " + c.chain_hash.substr(0, 16) + "..., time " + std::to_string(c.time_ns) +
           ")";
  };
  for (const CheckpointRow& c : same) {
    if (c.chain_hash != row->chain_hash) {
      row->problem = "fork";
      row->problem_detail = "record " + std::to_string(row->covers) +
                            " has another chain hash in the stored " + named(c);
      return;
    }
  }
  if (below != nullptr && below->time_ns >= row->time_ns) {
    row->problem = "rollback";
    row->problem_detail = "it is no later than the stored " + named(*below) +
                          ", which covers fewer records";
  } else if (above != nullptr && above->time_ns <= row->time_ns) {
    row->problem = "rollback";
    row->problem_detail = "the stored " + named(*above) +
                          " covers more records but is no later: the log went back after it";
  }
}

}  // namespace vigil::hub
