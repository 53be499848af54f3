#include "enforce/internal/sqlite.h"

namespace vigil::enforce::internal {

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), s_(other.s_), bind_error_(std::move(other.bind_error_)) {
  other.s_ = nullptr;
}

Stmt::~Stmt() {
  if (s_ != nullptr) sqlite3_finalize(s_);
}

Stmt& Stmt::Bind(int index, int64_t v) {
  if (sqlite3_bind_int64(s_, index, v) != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = db_->Error("binding parameter " + std::to_string(index));
  }
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view v) {
  if (sqlite3_bind_text(s_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) !=
          SQLITE_OK &&
      bind_error_.ok()) {
    bind_error_ = db_->Error("binding parameter " + std::to_string(index));
  }
  return *this;
}

core::Result<bool> Stmt::Step() {
  if (!bind_error_.ok()) return bind_error_;
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error("running \"" + std::string(sqlite3_sql(s_)).substr(0, 60) + "\"");
}

core::Status Stmt::Run() {
  for (;;) {
    auto row = Step();
    if (!row.has_value()) return row.error();
    if (!*row) return core::Status::Ok();
  }
}

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(s_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(s_, col);
  const int n = sqlite3_column_bytes(s_, col);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t), n);
}

core::Result<std::unique_ptr<Db>> Db::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  std::unique_ptr<Db> db(new Db(path, raw));
  if (rc != SQLITE_OK) {
    return core::Status(core::StatusCode::kUnavailable,
                        path + ": cannot open: " +
                            (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  VIGIL_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  VIGIL_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  return db;
}

Db::~Db() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

core::Status Db::Error(std::string_view what) const {
  const int code = sqlite3_errcode(db_);
  const core::StatusCode sc = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB
                                  ? core::StatusCode::kDataLoss
                                  : core::StatusCode::kUnavailable;
  return core::Status(sc, path_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_));
}

core::Status Db::Exec(std::string_view sql) {
  char* msg = nullptr;
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    sqlite3_free(msg);
    return Error("running \"" + text.substr(0, 60) + "\"");
  }
  return core::Status::Ok();
}

core::Result<Stmt> Db::Prepare(std::string_view sql) const {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr) !=
      SQLITE_OK) {
    return Error("preparing \"" + std::string(sql.substr(0, 60)) + "\"");
  }
  return Stmt(this, s);
}

int64_t Db::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }

void Db::RollbackQuietly() { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

}  // namespace vigil::enforce::internal
