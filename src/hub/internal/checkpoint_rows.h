#pragma once

// The audit_checkpoints table's columns and row reader, shared by the SQLite and PostgreSQL
// stores (hub/store.h, schema version 5).

#include "hub/store.h"

namespace vigil::hub::internal {

inline constexpr const char* kCheckpointColumns =
    "id, host, seq, covers, chain_hash, time_ns, key_id, public_key, signature, verification, "
    "reason, problem, problem_detail, received_ms";

// `Row` has T(i) (text) and I(i) (int64), as the stores' statement and result readers do.
template <typename Row>
CheckpointRow CheckpointFrom(const Row& q) {
  CheckpointRow c;
  c.id = q.I(0);
  c.host = q.T(1);
  c.seq = q.I(2);
  c.covers = q.I(3);
  c.chain_hash = q.T(4);
  c.time_ns = q.I(5);
  c.key_id = q.T(6);
  c.public_key = q.T(7);
  c.signature = q.T(8);
  c.verification = q.T(9);
  c.reason = q.T(10);
  c.problem = q.T(11);
  c.problem_detail = q.T(12);
  c.received_ms = q.I(13);
  return c;
}

}  // namespace vigil::hub::internal
