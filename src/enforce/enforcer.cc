// The Enforcer: ledger (SQLite), actions and their rollback, escalation queue, audit outbox.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/file_lock.h"
#include "enforce/enforce.h"
#include "enforce/internal/host.h"
#include "enforce/internal/net_block.h"
#include "enforce/internal/sqlite.h"

namespace vigil::enforce {
namespace {

using internal::Db;
using internal::Stmt;
using internal::Txn;

constexpr int kSchemaVersion = 1;
constexpr int kFreezeWaitMs = 2000;
constexpr uint64_t kMaxTimeoutSeconds = 30ull * 24 * 3600;
constexpr size_t kMaxText = 4096;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actions(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ns INTEGER NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  mode TEXT NOT NULL,
  state TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  reversible INTEGER NOT NULL DEFAULT 0,
  cgroup TEXT NOT NULL DEFAULT '',
  moves TEXT NOT NULL DEFAULT '[]',
  cgroup_id INTEGER NOT NULL DEFAULT 0,
  escalation_id INTEGER NOT NULL DEFAULT 0,
  rolled_back_ns INTEGER NOT NULL DEFAULT 0,
  rollback_detail TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS escalations(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_ns INTEGER NOT NULL,
  deadline_ns INTEGER NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  target TEXT NOT NULL,
  proposed TEXT NOT NULL,
  on_timeout TEXT NOT NULL,
  state TEXT NOT NULL,
  decided_ns INTEGER NOT NULL DEFAULT 0,
  decided_by TEXT NOT NULL DEFAULT '',
  action_id INTEGER NOT NULL,
  result_id INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS escalations_pending ON escalations(state, deadline_ns);
CREATE TABLE IF NOT EXISTS audit_outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  payload TEXT NOT NULL);
)sql";

constexpr std::string_view kActionColumns =
    "id, time_ns, action, target, rule, reason, mode, state, detail, reversible, cgroup, "
    "escalation_id, rolled_back_ns, rollback_detail";
constexpr std::string_view kEscalationColumns =
    "id, created_ns, deadline_ns, rule, reason, target, proposed, on_timeout, state, decided_ns, "
    "decided_by, action_id, result_id";

using core::FileLock;

core::Status DamagedRow(const std::string& path, std::string_view table, int64_t id,
                        std::string_view what) {
  return core::DataLoss(path + ": " + std::string(table) + " row " + std::to_string(id) + ": " +
                        std::string(what));
}

// What carrying out an action did.
struct Effect {
  std::string detail;
  std::string cgroup;
  std::string moves = "[]";
  uint64_t cgroup_id = 0;
  uint64_t escalation_id = 0;
  core::Status error;
};

// The moves column as written by EnterHold (an empty array when it does not parse).
nlohmann::json ParseMoves(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_array() ? j : nlohmann::json::array();
}

std::string Describe(const ActionRequest& r) {
  return std::string(ActionKindName(r.action)) + " " + r.target.ToString();
}

}  // namespace

struct Enforcer::Impl {
  EnforcerOptions options;
  const core::Clock& clock;
  std::unique_ptr<Db> db;
  std::string ledger_path;
  std::string lock_path;
  std::mutex mu;
  std::optional<internal::Cgroups> cgroups;
  core::Counter* success[kActionKindCount] = {};
  core::Counter* failure[kActionKindCount] = {};
  core::Counter* rollback[kActionKindCount] = {};
  core::Counter* would[kActionKindCount] = {};

  Impl(const EnforcerOptions& o, const core::Clock& c) : options(o), clock(c) {}

  std::string HoldPrefix() const { return "/" + options.cgroup_subtree + "/"; }

  core::Result<internal::Cgroups*> Cg() {
    if (!cgroups) {
      auto cg = internal::Cgroups::Open(options.cgroup_root);
      if (!cg.has_value()) return cg.error();
      cgroups = std::move(cg).value();
    }
    return &*cgroups;
  }

  core::Result<internal::NetBlock> Net() {
    VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
    return internal::NetBlock(cg->root(), options.bpf_pin_dir);
  }

  core::Status Outbox(std::string_view type, nlohmann::json payload) {
    payload["actor"] = options.actor;
    VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("INSERT INTO audit_outbox(type, payload) "
                                               "VALUES(?, ?)"));
    return s.Bind(1, type).Bind(2, payload.dump()).Run();
  }

  core::Result<LedgerEntry> ReadAction(const Stmt& s) const {
    LedgerEntry e;
    e.id = static_cast<uint64_t>(s.Int(0));
    e.time_ns = s.Int(1);
    const int64_t id = s.Int(0);
    if (!ParseActionKind(s.Text(2), &e.action)) {
      return DamagedRow(ledger_path, "actions", id, "unknown action \"" + s.Text(2) + "\"");
    }
    auto target = ParseTarget(s.Text(3));
    if (!target.has_value()) {
      return DamagedRow(ledger_path, "actions", id, target.error().message());
    }
    e.target = std::move(target).value();
    e.rule = s.Text(4);
    e.reason = s.Text(5);
    if (!ParseMode(s.Text(6), &e.mode)) {
      return DamagedRow(ledger_path, "actions", id, "unknown mode \"" + s.Text(6) + "\"");
    }
    if (!ParseState(s.Text(7), &e.state)) {
      return DamagedRow(ledger_path, "actions", id, "unknown state \"" + s.Text(7) + "\"");
    }
    e.detail = s.Text(8);
    e.reversible = s.Int(9) != 0;
    e.cgroup = s.Text(10);
    e.escalation_id = static_cast<uint64_t>(s.Int(11));
    e.rolled_back_ns = s.Int(12);
    e.rollback_detail = s.Text(13);
    return e;
  }

  core::Result<Escalation> ReadEscalation(const Stmt& s) const {
    Escalation e;
    const int64_t id = s.Int(0);
    e.id = static_cast<uint64_t>(id);
    e.created_ns = s.Int(1);
    e.deadline_ns = s.Int(2);
    e.rule = s.Text(3);
    e.reason = s.Text(4);
    auto target = ParseTarget(s.Text(5));
    if (!target.has_value()) {
      return DamagedRow(ledger_path, "escalations", id, target.error().message());
    }
    e.target = std::move(target).value();
    if (!ParseActionKind(s.Text(6), &e.proposed) || e.proposed == ActionKind::kEscalate) {
      return DamagedRow(ledger_path, "escalations", id, "bad proposed action \"" + s.Text(6) + "\"");
    }
    if (!ParseTimeoutDefault(s.Text(7), &e.on_timeout)) {
      return DamagedRow(ledger_path, "escalations", id, "bad default \"" + s.Text(7) + "\"");
    }
    if (!ParseEscalationState(s.Text(8), &e.state)) {
      return DamagedRow(ledger_path, "escalations", id, "bad state \"" + s.Text(8) + "\"");
    }
    e.decided_ns = s.Int(9);
    e.decided_by = s.Text(10);
    e.action_id = static_cast<uint64_t>(s.Int(11));
    e.result_id = static_cast<uint64_t>(s.Int(12));
    return e;
  }

  core::Result<LedgerEntry> GetAction(uint64_t id) const {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT " + std::string(kActionColumns) +
                                               " FROM actions WHERE id = ?"));
    s.Bind(1, static_cast<int64_t>(id));
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return core::NotFound("no enforcement action with id " + std::to_string(id));
    return ReadAction(s);
  }

  core::Result<Escalation> GetEscalation(uint64_t id) const {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT " + std::string(kEscalationColumns) +
                                               " FROM escalations WHERE id = ?"));
    s.Bind(1, static_cast<int64_t>(id));
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return core::NotFound("no escalation with id " + std::to_string(id));
    return ReadEscalation(s);
  }

  static nlohmann::json EnforcementRecord(uint64_t id, const ActionRequest& r, State state,
                                          const Effect& fx) {
    nlohmann::json j = {{"id", id},
                        {"action", ActionKindName(r.action)},
                        {"target", r.target.ToString()},
                        {"rule", r.rule},
                        {"reason", r.reason},
                        {"mode", ModeName(r.mode)},
                        {"state", StateName(state)},
                        {"detail", fx.detail}};
    if (!fx.cgroup.empty()) j["cgroup"] = fx.cgroup;
    if (fx.escalation_id != 0) j["escalation"] = fx.escalation_id;
    if (!fx.error.ok()) j["error"] = fx.error.message();
    return j;
  }

  // ---- holding cgroups: Vigil-owned cgroups that processes are moved into ----

  // Moves the processes of `roots` (and their descendants) into <subtree>/a<id>, or finds the
  // Vigil cgroup an applied action already holds them in. On failure nothing stays moved.
  core::Status EnterHold(uint64_t id, const std::vector<int32_t>& roots, Effect* fx) {
    VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
    VIGIL_ASSIGN_OR_RETURN(std::string current, internal::ReadProcessCgroup(roots.front()));
    if (current.rfind(HoldPrefix(), 0) == 0) {
      VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT id FROM actions WHERE cgroup = ? AND "
                                                 "state = 'applied' LIMIT 1"));
      s.Bind(1, current);
      VIGIL_ASSIGN_OR_RETURN(bool held, s.Step());
      if (held) {
        fx->cgroup = current;
        fx->detail = "already held in " + current + " by action " + std::to_string(s.Int(0));
        return core::Status::Ok();
      }
    }
    const std::string path = HoldPrefix() + "a" + std::to_string(id);
    VIGIL_RETURN_IF_ERROR(cg->Create(path));
    nlohmann::json moves = nlohmann::json::array();
    core::Status st;
    // Twice: a child forked while the first pass ran is caught by the second.
    for (int pass = 0; pass < 2 && st.ok(); ++pass) {
      for (int32_t pid : internal::WithDescendants(roots)) {
        auto from = internal::ReadProcessCgroup(pid);
        if (!from.has_value() || *from == path) continue;
        core::Status moved = cg->Move(pid, path);
        if (moved.ok()) {
          moves.push_back({{"pid", pid}, {"from", *from}});
        } else if (pid == roots.front() || moved.code() != core::StatusCode::kNotFound) {
          st = moved;
          break;
        }
      }
    }
    fx->cgroup = path;
    fx->moves = moves.dump();
    if (!st.ok()) {
      (void)LeaveHold(path, moves, nullptr);
      fx->cgroup.clear();
      return st;
    }
    fx->detail = "moved " + std::to_string(moves.size()) + " process(es) into " + path;
    return core::Status::Ok();
  }

  // Moves every process in `path` back where it came from (per `moves`; processes born inside
  // go where the first moved process came from), falling back to the nearest existing ancestor
  // of a cgroup that is gone, and removes `path`.
  core::Status LeaveHold(const std::string& path, const nlohmann::json& moves,
                         std::string* detail) {
    VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
    std::map<int32_t, std::string> origin;
    std::string first_from = "/";
    for (const auto& m : moves) {
      if (!m.is_object() || !m.contains("pid") || !m.contains("from") ||
          !m["pid"].is_number_integer() || !m["from"].is_string()) {
        continue;
      }
      const std::string from = m["from"].get<std::string>();
      if (origin.empty()) first_from = from;
      origin[m["pid"].get<int32_t>()] = from;
    }
    size_t back = 0;
    core::Status first;
    for (int32_t pid : cg->Procs(path)) {
      auto it = origin.find(pid);
      std::string to = it != origin.end() ? it->second : first_from;
      while (to != "/" && !cg->Exists(to)) to = to.substr(0, to.find_last_of('/'));
      if (to.empty()) to = "/";
      core::Status st = cg->Move(pid, to);
      if (st.ok()) {
        ++back;
      } else if (st.code() != core::StatusCode::kNotFound && first.ok()) {
        first = st;
      }
    }
    core::Status removed = cg->Remove(path);
    if (first.ok()) first = removed;
    if (detail != nullptr) {
      *detail += "; moved " + std::to_string(back) + " process(es) back and removed " + path;
    }
    return first;
  }

  // Whether another applied action still uses the Vigil cgroup `path`.
  core::Result<bool> HoldInUse(const std::string& path, uint64_t except_id) {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT 1 FROM actions WHERE cgroup = ? AND "
                                               "state = 'applied' AND id != ? LIMIT 1"));
    s.Bind(1, path).Bind(2, static_cast<int64_t>(except_id));
    return s.Step();
  }

  core::Result<nlohmann::json> HoldMoves(const std::string& path) {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT moves FROM actions WHERE cgroup = ? AND "
                                               "moves != '[]' ORDER BY id LIMIT 1"));
    s.Bind(1, path);
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return nlohmann::json::array();
    nlohmann::json j = nlohmann::json::parse(s.Text(0), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_array()) {
      return core::DataLoss(ledger_path + ": the moves recorded for " + path + " do not parse");
    }
    return j;
  }

  // The processes a process or process-group target names, checked.
  core::Result<std::vector<int32_t>> Roots(const Target& t) {
    if (t.kind == TargetKind::kProcess) {
      VIGIL_RETURN_IF_ERROR(internal::CheckProcess(t.pid, t.start_time));
      return std::vector<int32_t>{t.pid};
    }
    std::vector<int32_t> members = internal::GroupMembers(t.pid);
    if (members.empty()) {
      return core::NotFound("process group " + std::to_string(t.pid) + " has no processes");
    }
    return members;
  }

  // ---- the actions ----

  core::Status Kill(const Target& t, Effect* fx) {
    switch (t.kind) {
      case TargetKind::kProcess:
        VIGIL_RETURN_IF_ERROR(internal::KillProcess(t.pid, t.start_time));
        fx->detail = "sent SIGKILL to process " + std::to_string(t.pid);
        return core::Status::Ok();
      case TargetKind::kProcessGroup:
        VIGIL_RETURN_IF_ERROR(internal::KillProcessGroup(t.pid));
        fx->detail = "sent SIGKILL to process group " + std::to_string(t.pid);
        return core::Status::Ok();
      case TargetKind::kCgroup: {
        VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
        if (!cg->Exists(t.cgroup)) return core::NotFound("cgroup " + cg->Abs(t.cgroup) + " does not exist");
        VIGIL_RETURN_IF_ERROR(cg->Kill(t.cgroup));
        fx->cgroup = t.cgroup;
        fx->detail = "killed every process of cgroup " + t.cgroup + " (cgroup.kill)";
        return core::Status::Ok();
      }
    }
    return core::Internal("unknown target kind");
  }

  core::Status Freeze(uint64_t id, const Target& t, Effect* fx) {
    VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
    if (t.kind == TargetKind::kCgroup) {
      if (!cg->Exists(t.cgroup)) return core::NotFound("cgroup " + cg->Abs(t.cgroup) + " does not exist");
      VIGIL_RETURN_IF_ERROR(cg->SetFrozen(t.cgroup, true, kFreezeWaitMs));
      fx->cgroup = t.cgroup;
      fx->detail = "froze cgroup " + t.cgroup;
      return core::Status::Ok();
    }
    VIGIL_ASSIGN_OR_RETURN(std::vector<int32_t> roots, Roots(t));
    VIGIL_RETURN_IF_ERROR(EnterHold(id, roots, fx));
    core::Status st = cg->SetFrozen(fx->cgroup, true, kFreezeWaitMs);
    if (!st.ok()) {
      (void)cg->SetFrozen(fx->cgroup, false, kFreezeWaitMs);
      VIGIL_ASSIGN_OR_RETURN(bool in_use, HoldInUse(fx->cgroup, id));
      if (!in_use) (void)LeaveHold(fx->cgroup, ParseMoves(fx->moves), nullptr);
      return st;
    }
    fx->detail += "; froze " + fx->cgroup;
    return core::Status::Ok();
  }

  core::Status BlockNetwork(uint64_t id, const Target& t, Effect* fx) {
    VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
    VIGIL_ASSIGN_OR_RETURN(internal::NetBlock net, Net());
    if (t.kind == TargetKind::kCgroup) {
      if (!cg->Exists(t.cgroup)) return core::NotFound("cgroup " + cg->Abs(t.cgroup) + " does not exist");
      VIGIL_ASSIGN_OR_RETURN(fx->cgroup_id, cg->Id(t.cgroup));
      VIGIL_RETURN_IF_ERROR(net.Add(fx->cgroup_id, id));
      fx->cgroup = t.cgroup;
      fx->detail = "connects from cgroup " + t.cgroup + " (id " + std::to_string(fx->cgroup_id) +
                   ") are refused";
      return core::Status::Ok();
    }
    VIGIL_ASSIGN_OR_RETURN(std::vector<int32_t> roots, Roots(t));
    VIGIL_RETURN_IF_ERROR(EnterHold(id, roots, fx));
    core::Status st;
    auto cid = cg->Id(fx->cgroup);
    if (cid.has_value()) {
      fx->cgroup_id = *cid;
      st = net.Add(fx->cgroup_id, id);
    } else {
      st = cid.error();
    }
    if (!st.ok()) {
      VIGIL_ASSIGN_OR_RETURN(bool in_use, HoldInUse(fx->cgroup, id));
      if (!in_use) (void)LeaveHold(fx->cgroup, ParseMoves(fx->moves), nullptr);
      fx->cgroup_id = 0;
      return st;
    }
    fx->detail += "; connects from " + fx->cgroup + " (cgroup id " +
                  std::to_string(fx->cgroup_id) + ") are refused";
    return core::Status::Ok();
  }

  core::Status Escalate(uint64_t id, const ActionRequest& r, Effect* fx) {
    const int64_t now = clock.NowUnixNanos();
    const int64_t deadline = now + static_cast<int64_t>(r.timeout_seconds) * 1'000'000'000;
    VIGIL_ASSIGN_OR_RETURN(
        Stmt s, db->Prepare("INSERT INTO escalations(created_ns, deadline_ns, rule, reason, "
                            "target, proposed, on_timeout, state, action_id) "
                            "VALUES(?, ?, ?, ?, ?, ?, ?, 'pending', ?)"));
    s.Bind(1, now).Bind(2, deadline).Bind(3, r.rule).Bind(4, r.reason)
        .Bind(5, r.target.ToString()).Bind(6, ActionKindName(r.proposed))
        .Bind(7, TimeoutDefaultName(r.on_timeout)).Bind(8, static_cast<int64_t>(id));
    VIGIL_RETURN_IF_ERROR(s.Run());
    fx->escalation_id = static_cast<uint64_t>(db->LastInsertId());
    fx->detail = "escalation " + std::to_string(fx->escalation_id) + " asks to " +
                 std::string(ActionKindName(r.proposed)) + " " + r.target.ToString() +
                 "; on timeout after " + std::to_string(r.timeout_seconds) + "s: " +
                 std::string(TimeoutDefaultName(r.on_timeout));
    nlohmann::json rec = {{"escalation", fx->escalation_id},
                          {"event", "queued"},
                          {"rule", r.rule},
                          {"reason", r.reason},
                          {"target", r.target.ToString()},
                          {"proposed", ActionKindName(r.proposed)},
                          {"on_timeout", TimeoutDefaultName(r.on_timeout)},
                          {"deadline_ns", deadline}};
    return Outbox("escalation", std::move(rec));
  }

  // ---- apply and rollback (the caller holds mu and the file lock) ----

  core::Result<Outcome> ApplyLocked(const ActionRequest& r) {
    const int64_t now = clock.NowUnixNanos();
    const size_t a = static_cast<size_t>(r.action);
    Outcome out;
    if (r.mode == Mode::kMonitor || r.action == ActionKind::kAlert ||
        r.action == ActionKind::kEscalate) {
      // Recorded in one transaction: nothing on the host changes.
      Effect fx;
      State state = State::kApplied;
      if (r.mode == Mode::kMonitor) {
        state = State::kMonitor;
        fx.detail = "monitor mode: would " + Describe(r);
      } else if (r.action == ActionKind::kAlert) {
        fx.detail = "alert recorded";
      }
      Txn txn(*db);
      VIGIL_RETURN_IF_ERROR(txn.Begin());
      VIGIL_ASSIGN_OR_RETURN(
          Stmt s, db->Prepare("INSERT INTO actions(time_ns, action, target, rule, reason, mode, "
                              "state, reversible) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
      const bool reversible = r.action != ActionKind::kKill && r.mode == Mode::kEnforce;
      s.Bind(1, now).Bind(2, ActionKindName(r.action)).Bind(3, r.target.ToString())
          .Bind(4, r.rule).Bind(5, r.reason).Bind(6, ModeName(r.mode)).Bind(7, StateName(state))
          .Bind(8, int64_t{reversible});
      VIGIL_RETURN_IF_ERROR(s.Run());
      out.id = static_cast<uint64_t>(db->LastInsertId());
      if (r.mode == Mode::kEnforce && r.action == ActionKind::kEscalate) {
        VIGIL_RETURN_IF_ERROR(Escalate(out.id, r, &fx));
      }
      VIGIL_ASSIGN_OR_RETURN(Stmt u, db->Prepare("UPDATE actions SET detail = ?, escalation_id = ? "
                                                 "WHERE id = ?"));
      u.Bind(1, fx.detail).Bind(2, static_cast<int64_t>(fx.escalation_id))
          .Bind(3, static_cast<int64_t>(out.id));
      VIGIL_RETURN_IF_ERROR(u.Run());
      VIGIL_RETURN_IF_ERROR(Outbox("enforcement", EnforcementRecord(out.id, r, state, fx)));
      VIGIL_RETURN_IF_ERROR(txn.Commit());
      (state == State::kMonitor ? would : success)[a]->Inc();
      out.state = state;
      out.detail = fx.detail;
      out.escalation_id = fx.escalation_id;
      return out;
    }

    // Recorded as applying first, so that a crash in between leaves a trace.
    {
      VIGIL_ASSIGN_OR_RETURN(
          Stmt s, db->Prepare("INSERT INTO actions(time_ns, action, target, rule, reason, mode, "
                              "state, reversible) VALUES(?, ?, ?, ?, ?, ?, 'applying', ?)"));
      s.Bind(1, now).Bind(2, ActionKindName(r.action)).Bind(3, r.target.ToString())
          .Bind(4, r.rule).Bind(5, r.reason).Bind(6, ModeName(r.mode))
          .Bind(7, int64_t{r.action != ActionKind::kKill});
      VIGIL_RETURN_IF_ERROR(s.Run());
      out.id = static_cast<uint64_t>(db->LastInsertId());
    }
    Effect fx;
    switch (r.action) {
      case ActionKind::kKill: fx.error = Kill(r.target, &fx); break;
      case ActionKind::kFreeze: fx.error = Freeze(out.id, r.target, &fx); break;
      case ActionKind::kBlockNetwork: fx.error = BlockNetwork(out.id, r.target, &fx); break;
      default: fx.error = core::Internal("unexpected action"); break;
    }
    const State state = fx.error.ok() ? State::kApplied : State::kFailed;
    if (!fx.error.ok()) {
      fx.detail = fx.error.message();
      fx.cgroup.clear();
      fx.moves = "[]";
      fx.cgroup_id = 0;
    }
    Txn txn(*db);
    VIGIL_RETURN_IF_ERROR(txn.Begin());
    VIGIL_ASSIGN_OR_RETURN(
        Stmt u, db->Prepare("UPDATE actions SET state = ?, detail = ?, cgroup = ?, moves = ?, "
                            "cgroup_id = ? WHERE id = ?"));
    u.Bind(1, StateName(state)).Bind(2, fx.detail).Bind(3, fx.cgroup).Bind(4, fx.moves)
        .Bind(5, static_cast<int64_t>(fx.cgroup_id)).Bind(6, static_cast<int64_t>(out.id));
    VIGIL_RETURN_IF_ERROR(u.Run());
    VIGIL_RETURN_IF_ERROR(Outbox("enforcement", EnforcementRecord(out.id, r, state, fx)));
    VIGIL_RETURN_IF_ERROR(txn.Commit());
    (fx.error.ok() ? success : failure)[a]->Inc();
    if (!fx.error.ok()) {
      spdlog::warn("enforce: action {} ({}) failed: {}", out.id, Describe(r), fx.detail);
    }
    out.state = state;
    out.detail = fx.detail;
    out.error = fx.error;
    return out;
  }

  // Undoes what the entry did on the host; appends to *detail.
  core::Status Undo(const LedgerEntry& e, std::string* detail) {
    const bool held = e.target.kind != TargetKind::kCgroup;
    switch (e.action) {
      case ActionKind::kAlert:
        *detail = "alert withdrawn (nothing on the host had changed)";
        return core::Status::Ok();
      case ActionKind::kFreeze: {
        VIGIL_ASSIGN_OR_RETURN(internal::Cgroups * cg, Cg());
        if (!cg->Exists(e.cgroup)) {
          *detail = "cgroup " + e.cgroup + " is gone; nothing left to thaw";
          return core::Status::Ok();
        }
        // A hold shared with a block-network action stays frozen only through this entry.
        VIGIL_RETURN_IF_ERROR(cg->SetFrozen(e.cgroup, false, kFreezeWaitMs));
        *detail = "thawed " + e.cgroup;
        break;
      }
      case ActionKind::kBlockNetwork: {
        VIGIL_ASSIGN_OR_RETURN(internal::NetBlock net, Net());
        auto denied = net.Remove(static_cast<uint64_t>(CgroupIdOf(e.id)));
        if (denied.has_value()) {
          *detail = "removed the deny-list entry of " + e.cgroup + " (" +
                    std::to_string(*denied) + " connect(s) refused)";
        } else if (denied.error().code() == core::StatusCode::kNotFound) {
          *detail = "the deny-list entry of " + e.cgroup + " was already gone";
        } else {
          return denied.error();
        }
        break;
      }
      case ActionKind::kEscalate:
      case ActionKind::kKill:
        return core::Internal("Undo of " + std::string(ActionKindName(e.action)));
    }
    if (held) {
      VIGIL_ASSIGN_OR_RETURN(bool in_use, HoldInUse(e.cgroup, e.id));
      if (in_use) {
        *detail += "; " + e.cgroup + " stays: another applied action holds it";
      } else {
        VIGIL_ASSIGN_OR_RETURN(nlohmann::json moves, HoldMoves(e.cgroup));
        VIGIL_RETURN_IF_ERROR(LeaveHold(e.cgroup, moves, detail));
      }
    }
    return core::Status::Ok();
  }

  int64_t CgroupIdOf(uint64_t id) {
    auto s = db->Prepare("SELECT cgroup_id FROM actions WHERE id = ?");
    if (!s.has_value()) return 0;
    s->Bind(1, static_cast<int64_t>(id));
    auto row = s->Step();
    return row.has_value() && *row ? s->Int(0) : 0;
  }

  core::Status RecordRollback(const LedgerEntry& e, std::string_view result,
                              const std::string& detail, bool mark) {
    Txn txn(*db);
    VIGIL_RETURN_IF_ERROR(txn.Begin());
    if (mark) {
      VIGIL_ASSIGN_OR_RETURN(
          Stmt u, db->Prepare("UPDATE actions SET state = 'rolled-back', rolled_back_ns = ?, "
                              "rollback_detail = ? WHERE id = ?"));
      u.Bind(1, clock.NowUnixNanos()).Bind(2, detail).Bind(3, static_cast<int64_t>(e.id));
      VIGIL_RETURN_IF_ERROR(u.Run());
    }
    VIGIL_RETURN_IF_ERROR(Outbox("rollback", {{"id", e.id},
                                              {"action", ActionKindName(e.action)},
                                              {"target", e.target.ToString()},
                                              {"rule", e.rule},
                                              {"result", result},
                                              {"detail", detail}}));
    return txn.Commit();
  }

  core::Result<Outcome> RollbackLocked(uint64_t id) {
    VIGIL_ASSIGN_OR_RETURN(LedgerEntry e, GetAction(id));
    const size_t a = static_cast<size_t>(e.action);
    if (e.state != State::kApplied) {
      return core::FailedPrecondition("action " + std::to_string(id) + " (" +
                                      std::string(ActionKindName(e.action)) + " " +
                                      e.target.ToString() + ") is " +
                                      std::string(StateName(e.state)) +
                                      ": there is nothing to roll back");
    }
    if (e.action == ActionKind::kKill) {
      const std::string why = "a kill cannot be undone: the process is gone";
      VIGIL_RETURN_IF_ERROR(RecordRollback(e, "not-reversible", why, /*mark=*/false));
      return core::FailedPrecondition("action " + std::to_string(id) + " (kill " +
                                      e.target.ToString() + ") cannot be rolled back: " + why);
    }
    Outcome out;
    out.id = id;
    std::string detail;
    if (e.action == ActionKind::kEscalate) {
      VIGIL_ASSIGN_OR_RETURN(Escalation esc, GetEscalation(e.escalation_id));
      if (esc.state != EscalationState::kPending) {
        return core::FailedPrecondition(
            "action " + std::to_string(id) + ": escalation " + std::to_string(esc.id) + " is " +
            std::string(EscalationStateName(esc.state)) +
            (esc.result_id != 0 ? "; roll back action " + std::to_string(esc.result_id) +
                                      " (what it carried out) instead"
                                : "; there is nothing to roll back"));
      }
      VIGIL_RETURN_IF_ERROR(DecideEscalation(esc, EscalationState::kCancelled, options.actor, 0));
      detail = "escalation " + std::to_string(esc.id) + " cancelled";
    } else {
      core::Status st = Undo(e, &detail);
      if (!st.ok()) {
        VIGIL_RETURN_IF_ERROR(RecordRollback(e, "failed", st.message(), /*mark=*/false));
        out.state = State::kApplied;
        out.detail = st.message();
        out.error = st;
        return out;
      }
    }
    VIGIL_RETURN_IF_ERROR(RecordRollback(e, "rolled-back", detail, /*mark=*/true));
    rollback[a]->Inc();
    out.state = State::kRolledBack;
    out.detail = detail;
    return out;
  }

  // ---- escalations ----

  core::Status DecideEscalation(const Escalation& esc, EscalationState to, std::string_view by,
                                uint64_t result_id) {
    Txn txn(*db);
    VIGIL_RETURN_IF_ERROR(txn.Begin());
    VIGIL_ASSIGN_OR_RETURN(
        Stmt u, db->Prepare("UPDATE escalations SET state = ?, decided_ns = ?, decided_by = ?, "
                            "result_id = ? WHERE id = ? AND state = 'pending'"));
    u.Bind(1, EscalationStateName(to)).Bind(2, clock.NowUnixNanos()).Bind(3, by)
        .Bind(4, static_cast<int64_t>(result_id)).Bind(5, static_cast<int64_t>(esc.id));
    VIGIL_RETURN_IF_ERROR(u.Run());
    nlohmann::json rec = {{"escalation", esc.id},
                          {"event", EscalationStateName(to)},
                          {"rule", esc.rule},
                          {"target", esc.target.ToString()},
                          {"proposed", ActionKindName(esc.proposed)},
                          {"on_timeout", TimeoutDefaultName(esc.on_timeout)},
                          {"by", by}};
    if (result_id != 0) rec["result_id"] = result_id;
    VIGIL_RETURN_IF_ERROR(Outbox("escalation", std::move(rec)));
    return txn.Commit();
  }

  core::Result<Outcome> CarryOut(const Escalation& esc, std::string reason) {
    ActionRequest r;
    r.action = esc.proposed;
    r.target = esc.target;
    r.rule = esc.rule;
    r.reason = std::move(reason);
    r.mode = Mode::kEnforce;
    return ApplyLocked(r);
  }

  core::Result<size_t> ExpireDueLocked() {
    std::vector<Escalation> due;
    {
      VIGIL_ASSIGN_OR_RETURN(Stmt s, db->Prepare("SELECT " + std::string(kEscalationColumns) +
                                                 " FROM escalations WHERE state = 'pending' AND "
                                                 "deadline_ns <= ? ORDER BY id"));
      s.Bind(1, clock.NowUnixNanos());
      for (;;) {
        VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        VIGIL_ASSIGN_OR_RETURN(Escalation e, ReadEscalation(s));
        due.push_back(std::move(e));
      }
    }
    for (const Escalation& esc : due) {
      uint64_t result_id = 0;
      if (esc.on_timeout == TimeoutDefault::kEnforce) {
        VIGIL_ASSIGN_OR_RETURN(
            Outcome o, CarryOut(esc, "escalation " + std::to_string(esc.id) +
                                         " expired unanswered; its default is enforce"));
        result_id = o.id;
      }
      VIGIL_RETURN_IF_ERROR(DecideEscalation(esc, EscalationState::kExpired, "timeout", result_id));
    }
    return due.size();
  }

  core::Result<Escalation> PendingEscalation(uint64_t id) {
    VIGIL_ASSIGN_OR_RETURN(Escalation esc, GetEscalation(id));
    if (esc.state == EscalationState::kPending) return esc;
    std::string why = "escalation " + std::to_string(id) + " is " +
                      std::string(EscalationStateName(esc.state));
    if (esc.state == EscalationState::kExpired) {
      why += " (nobody answered before its deadline; its default, " +
             std::string(TimeoutDefaultName(esc.on_timeout)) + ", was applied" +
             (esc.result_id != 0 ? " as action " + std::to_string(esc.result_id) : "") + ")";
    } else if (!esc.decided_by.empty()) {
      why += " (by " + esc.decided_by + ")";
    }
    return core::FailedPrecondition(why);
  }
};

Enforcer::Enforcer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Enforcer::~Enforcer() = default;

core::Result<std::unique_ptr<Enforcer>> Enforcer::Open(const EnforcerOptions& options,
                                                       const core::Clock& clock,
                                                       core::Registry& registry) {
  if (options.state_dir.empty()) return core::InvalidArgument("enforcement: no state directory");
  if (options.cgroup_subtree.empty() || options.cgroup_subtree.find('/') != std::string::npos ||
      options.cgroup_subtree == "." || options.cgroup_subtree == "..") {
    return core::InvalidArgument("enforcement: the cgroup subtree \"" + options.cgroup_subtree +
                                 "\" must be one path component");
  }
  if (mkdir(options.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return core::ErrnoError(errno, "creating state directory " + options.state_dir);
  }
  auto impl = std::make_unique<Impl>(options, clock);
  impl->ledger_path = options.state_dir + "/enforcement.db";
  impl->lock_path = options.state_dir + "/enforce.lock";
  VIGIL_ASSIGN_OR_RETURN(impl->db, internal::Db::Open(impl->ledger_path));
  VIGIL_RETURN_IF_ERROR(impl->db->Exec(kSchema));
  {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, impl->db->Prepare("SELECT value FROM meta WHERE key = 'schema'"));
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      VIGIL_ASSIGN_OR_RETURN(Stmt i, impl->db->Prepare("INSERT INTO meta(key, value) "
                                                       "VALUES('schema', ?)"));
      VIGIL_RETURN_IF_ERROR(i.Bind(1, std::to_string(kSchemaVersion)).Run());
    } else if (s.Text(0) != std::to_string(kSchemaVersion)) {
      return core::OutOfRange(impl->ledger_path + ": ledger schema " + s.Text(0) +
                              " is not the one this build reads (" +
                              std::to_string(kSchemaVersion) + ")");
    }
  }
  for (int i = 0; i < kActionKindCount; ++i) {
    const core::Labels labels = {
        {"action", std::string(ActionKindName(static_cast<ActionKind>(i)))}};
    auto get = [&](const char* name, const char* help, core::Counter** out) -> core::Status {
      auto c = registry.GetCounter(name, help, labels);
      if (!c.has_value()) return c.error();
      *out = *c;
      return core::Status::Ok();
    };
    VIGIL_RETURN_IF_ERROR(get("vigil_enforcement_success_total",
                              "Enforcement actions carried out", &impl->success[i]));
    VIGIL_RETURN_IF_ERROR(get("vigil_enforcement_failure_total",
                              "Enforcement actions that failed on the host", &impl->failure[i]));
    VIGIL_RETURN_IF_ERROR(get("vigil_enforcement_rollback_total",
                              "Enforcement actions rolled back", &impl->rollback[i]));
    VIGIL_RETURN_IF_ERROR(get("vigil_enforcement_would_have_enforced_total",
                              "Actions monitor mode recorded instead of carrying out",
                              &impl->would[i]));
  }
  return std::unique_ptr<Enforcer>(new Enforcer(std::move(impl)));
}

core::Result<Outcome> Enforcer::Apply(const ActionRequest& r) {
  const std::string what = "enforcement: " + std::string(ActionKindName(r.action)) + " " +
                           r.target.ToString() + ": ";
  VIGIL_ASSIGN_OR_RETURN(Target checked, ParseTarget(r.target.ToString()));
  (void)checked;
  if (r.rule.size() > kMaxText || r.reason.size() > kMaxText) {
    return core::InvalidArgument(what + "rule and reason are limited to 4096 bytes");
  }
  if (r.target.kind != TargetKind::kCgroup) {
    if (r.target.pid == 1) return core::InvalidArgument(what + "refusing to act on pid 1 (init)");
    if (r.target.kind == TargetKind::kProcess && r.target.pid == getpid()) {
      return core::InvalidArgument(what + "refusing to act on vigil itself");
    }
    if (r.target.kind == TargetKind::kProcessGroup && r.target.pid == getpgrp()) {
      return core::InvalidArgument(what + "refusing to act on vigil's own process group");
    }
  }
  if (r.action == ActionKind::kEscalate) {
    if (r.proposed == ActionKind::kEscalate) {
      return core::InvalidArgument(what + "an escalation cannot propose another escalation");
    }
    if (r.timeout_seconds < 1 || r.timeout_seconds > kMaxTimeoutSeconds) {
      return core::InvalidArgument(what + "the timeout must be 1 second .. 30 days");
    }
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  return impl_->ApplyLocked(r);
}

core::Result<Outcome> Enforcer::Rollback(uint64_t id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  return impl_->RollbackLocked(id);
}

core::Result<std::vector<LedgerEntry>> Enforcer::List(size_t limit) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(Stmt s, impl_->db->Prepare("SELECT " + std::string(kActionColumns) +
                                                    " FROM actions ORDER BY id DESC LIMIT ?"));
  s.Bind(1, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  std::vector<LedgerEntry> out;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    VIGIL_ASSIGN_OR_RETURN(LedgerEntry e, impl_->ReadAction(s));
    out.push_back(std::move(e));
  }
  return out;
}

core::Result<LedgerEntry> Enforcer::Get(uint64_t id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->GetAction(id);
}

core::Result<Enforcer::Tally> Enforcer::Count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(Stmt s, impl_->db->Prepare("SELECT action, state, COUNT(*) FROM actions "
                                                    "GROUP BY action, state"));
  Tally t;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    ActionKind a;
    State st;
    if (!ParseActionKind(s.Text(0), &a) || !ParseState(s.Text(1), &st)) {
      return core::DataLoss(impl_->ledger_path + ": actions: unknown action or state \"" +
                            s.Text(0) + "\"/\"" + s.Text(1) + "\"");
    }
    t.by_state[static_cast<size_t>(st)][static_cast<size_t>(a)] += static_cast<uint64_t>(s.Int(2));
  }
  for (uint64_t n : t.by_state[static_cast<size_t>(State::kRolledBack)]) t.rolled_back_total += n;
  return t;
}

core::Result<std::vector<Escalation>> Enforcer::Escalations(bool pending_only) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  VIGIL_ASSIGN_OR_RETURN(size_t expired, impl_->ExpireDueLocked());
  (void)expired;
  VIGIL_ASSIGN_OR_RETURN(
      Stmt s, impl_->db->Prepare("SELECT " + std::string(kEscalationColumns) +
                                 " FROM escalations" +
                                 (pending_only ? " WHERE state = 'pending'" : "") +
                                 " ORDER BY id DESC"));
  std::vector<Escalation> out;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    VIGIL_ASSIGN_OR_RETURN(Escalation e, impl_->ReadEscalation(s));
    out.push_back(std::move(e));
  }
  return out;
}

core::Result<Outcome> Enforcer::Approve(uint64_t escalation_id, std::string_view who) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  VIGIL_ASSIGN_OR_RETURN(size_t expired, impl_->ExpireDueLocked());
  (void)expired;
  VIGIL_ASSIGN_OR_RETURN(Escalation esc, impl_->PendingEscalation(escalation_id));
  VIGIL_ASSIGN_OR_RETURN(
      Outcome o, impl_->CarryOut(esc, "escalation " + std::to_string(esc.id) + " approved by " +
                                          std::string(who)));
  VIGIL_RETURN_IF_ERROR(
      impl_->DecideEscalation(esc, EscalationState::kApproved, who, o.id));
  o.escalation_id = esc.id;
  return o;
}

core::Result<Outcome> Enforcer::Deny(uint64_t escalation_id, std::string_view who) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  VIGIL_ASSIGN_OR_RETURN(size_t expired, impl_->ExpireDueLocked());
  (void)expired;
  VIGIL_ASSIGN_OR_RETURN(Escalation esc, impl_->PendingEscalation(escalation_id));
  VIGIL_RETURN_IF_ERROR(impl_->DecideEscalation(esc, EscalationState::kDenied, who, 0));
  Outcome o;
  o.id = esc.action_id;
  o.state = State::kApplied;
  o.escalation_id = esc.id;
  o.detail = "escalation " + std::to_string(esc.id) + " denied by " + std::string(who) +
             "; nothing was done to " + esc.target.ToString();
  return o;
}

core::Result<size_t> Enforcer::ExpireDue() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(FileLock flock_guard, FileLock::Take(impl_->lock_path));
  return impl_->ExpireDueLocked();
}

core::Result<size_t> Enforcer::DrainAudit(const AuditWriter& write) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  size_t done = 0;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(Stmt s, impl_->db->Prepare("SELECT id, type, payload FROM audit_outbox "
                                                      "ORDER BY id LIMIT 256"));
    std::vector<std::tuple<int64_t, std::string, std::string>> batch;
    for (;;) {
      VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      batch.emplace_back(s.Int(0), s.Text(1), s.Text(2));
    }
    if (batch.empty()) return done;
    for (auto& [id, type, text] : batch) {
      nlohmann::json payload = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (payload.is_discarded()) {
        return DamagedRow(impl_->ledger_path, "audit_outbox", id, "payload is not JSON");
      }
      VIGIL_RETURN_IF_ERROR(write(type, std::move(payload)));
      VIGIL_ASSIGN_OR_RETURN(Stmt d, impl_->db->Prepare("DELETE FROM audit_outbox WHERE id = ?"));
      VIGIL_RETURN_IF_ERROR(d.Bind(1, id).Run());
      ++done;
    }
  }
}

core::Result<size_t> Enforcer::PendingAudit() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  VIGIL_ASSIGN_OR_RETURN(Stmt s, impl_->db->Prepare("SELECT COUNT(*) FROM audit_outbox"));
  VIGIL_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? static_cast<size_t>(s.Int(0)) : size_t{0};
}

const std::string& Enforcer::ledger_path() const { return impl_->ledger_path; }

}  // namespace vigil::enforce
