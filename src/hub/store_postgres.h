#pragma once

// hub::Store on PostgreSQL (libpqxx), for several hub instances sharing one database (schema in
// docs/hub.md). Each Store holds a bounded pool of connections (StoreOptions::pool_size, opened
// when needed, a broken one dropped and replaced at the next call; a call finding all busy waits
// up to pool_wait_ms), so calls run concurrently, each one READ COMMITTED transaction, retried
// up to five times when PostgreSQL reports a serialization failure or a deadlock. What makes
// instances safe together:
//   - ingestion: the message ids are inserted first (primary key (host, message_id), ON CONFLICT
//     DO NOTHING) in the same transaction as the findings, so a message is stored once: a
//     concurrent redelivery waits for the first to commit and is then a duplicate. A batch
//     (IngestBatch) is one transaction of a fixed number of statements whatever its size;
//   - incident joining: the transaction takes a transaction-scoped advisory lock per
//     (host, pid, process) of the batch's findings, in ascending key order (no deadlock
//     between batches; the agents rows are updated last, in host order), then loads and locks
//     (FOR UPDATE) the open incidents those findings could join, joins the findings in memory
//     by the rule of hub/store.h, and writes incidents with unnest() over array parameters and
//     alerts with COPY. Findings of one process ingested at once by several instances join
//     one incident;
//   - escalations: decisions and time-outs are one UPDATE ... WHERE state = 'pending'
//     RETURNING, so exactly one of them takes effect and is returned;
//   - the schema is created at start under a transaction-scoped advisory lock and versioned in
//     the table hub_schema: instances starting at once create it once; a newer version is
//     refused.
// libpqxx's exceptions are caught here and returned as core::Status: kUnavailable (connection,
// server), kInvalidArgument for data PostgreSQL refuses (SQLSTATE class 22). Messages name the
// URI with its password redacted, and never contain the password.

#include <memory>
#include <string>

#include "hub/store.h"

namespace vigil::hub {

// Connects to `uri` (a postgres:// or postgresql:// URI, hub/store_location.h) and creates or
// checks the schema.
core::Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& uri,
                                                       const StoreOptions& options);

// The schema version this hub creates and reads (a version-1 database is upgraded in place).
inline constexpr int kPostgresSchemaVersion = kHubSchemaVersionNumber;

}  // namespace vigil::hub
