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

}  // namespace vigil::hub
