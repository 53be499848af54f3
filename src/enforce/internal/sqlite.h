#pragma once

// A thin RAII layer over the SQLite C API for the enforcement ledger: a connection, prepared
// statements with positional binds, and transactions. Every failure is a Status naming the
// database file and SQLite's message. Not thread-safe; the caller serialises.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::enforce::internal {

class Db;

class Stmt {
 public:
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  // Binds are 1-based, as in SQLite.
  Stmt& Bind(int index, int64_t v);
  Stmt& Bind(int index, std::string_view v);
  // Runs to completion (INSERT, UPDATE, DELETE).
  core::Status Run();
  // Steps once: true with a row, false at the end, or an error.
  core::Result<bool> Step();

  int64_t Int(int col) const;
  std::string Text(int col) const;

 private:
  friend class Db;
  Stmt(const Db* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  const Db* db_;
  sqlite3_stmt* s_;
  core::Status bind_error_;
};

class Db {
 public:
  // Opens (creating) `path` in WAL mode with a busy timeout, so that several processes (the
  // agent, CLI commands) may use it.
  static core::Result<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  core::Status Exec(std::string_view sql);
  core::Result<Stmt> Prepare(std::string_view sql) const;
  int64_t LastInsertId() const;
  // BEGIN IMMEDIATE (takes the write lock now, so a read-then-write cannot deadlock).
  core::Status Begin() { return Exec("BEGIN IMMEDIATE"); }
  core::Status Commit() { return Exec("COMMIT"); }
  void RollbackQuietly();

  const std::string& path() const { return path_; }
  core::Status Error(std::string_view what) const;

 private:
  Db(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  std::string path_;
  sqlite3* db_;
};

// Rolls back on scope exit unless Commit() succeeded.
class Txn {
 public:
  explicit Txn(Db& db) : db_(db) {}
  ~Txn() {
    if (open_) db_.RollbackQuietly();
  }
  core::Status Begin() {
    VIGIL_RETURN_IF_ERROR(db_.Begin());
    open_ = true;
    return core::Status::Ok();
  }
  core::Status Commit() {
    VIGIL_RETURN_IF_ERROR(db_.Commit());
    open_ = false;
    return core::Status::Ok();
  }

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace vigil::enforce::internal
