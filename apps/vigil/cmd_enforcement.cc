// vigil enforcement list|rollback|apply and vigil escalations list|approve|deny: the enforcement
// ledger and the escalation queue (src/enforce), with every change written to the audit log.

#include <pwd.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"
#include "enforce/enforce.h"

namespace vigil::app {
namespace {

struct Common {
  std::string config = std::string(core::kDefaultConfigPath);
  std::string state_dir;
  std::string audit_dir;
  std::string audit_key;
  std::string audit_fsync = "batch";
  bool json = false;
};

void AddCommonFlags(CLI::App* cmd, Common* c) {
  cmd->add_option("--config", c->config, "Config file (its state_dir locates the ledger)")
      ->capture_default_str();
  cmd->add_option("--state-dir", c->state_dir,
                  "State directory holding enforcement.db (default: the config's state_dir, "
                  "/var/lib/vigil)");
  cmd->add_option("--audit", c->audit_dir, "Audit log directory (default <state_dir>/audit)");
  AddAuditKeyFlags(cmd, &c->audit_key, &c->audit_fsync);
  cmd->add_flag("--json", c->json, "Print JSON");
}

// The ledger's state directory: --state-dir, else the config's.
core::Result<std::string> StateDir(const Common& c) {
  if (!c.state_dir.empty()) return c.state_dir;
  auto config = core::LoadConfig(c.config);
  if (!config.has_value()) return config.error().WithContext("--config");
  return config->state_dir;
}

struct Opened {
  std::unique_ptr<enforce::Enforcer> enforcer;
  std::string state_dir;
};

core::Result<Opened> OpenEnforcer(const Common& c) {
  Opened o;
  VIGIL_ASSIGN_OR_RETURN(o.state_dir, StateDir(c));
  enforce::EnforcerOptions eo;
  eo.state_dir = o.state_dir;
  eo.actor = std::string("vigil CLI ") + VIGIL_VERSION;
  VIGIL_ASSIGN_OR_RETURN(o.enforcer, enforce::Enforcer::Open(eo, core::SystemClock::Get(),
                                                             core::Registry::Get()));
  return o;
}

// Moves the ledger's queued audit records into the audit log. When another writer (a running
// agent) holds the log, the records stay queued in the ledger and the user is told.
void DrainAudit(const Common& c, const Opened& o) {
  auto pending = o.enforcer->PendingAudit();
  if (!pending.has_value() || *pending == 0) return;
  const std::string dir = c.audit_dir.empty() ? o.state_dir + "/audit" : c.audit_dir;
  // The host key, as the agent signs the same log with (audit_trail.h).
  const std::string key = AuditKeyPath(o.state_dir, c.audit_key);
  audit::AuditOptions opts;
  if (!audit::ParseFsyncMode(c.audit_fsync, &opts.fsync)) return;  // CLI11 checked it
  opts.writer = std::string("vigil CLI ") + VIGIL_VERSION;
  auto signer = OpenCheckpointSigner(key);
  core::Result<std::unique_ptr<audit::AuditLog>> log =
      signer.has_value()
          ? audit::AuditLog::Open(dir, opts, **signer, core::SystemClock::Get())
          : core::Result<std::unique_ptr<audit::AuditLog>>(signer.error());
  if (!log.has_value()) {
    std::fprintf(stderr,
                 "vigil: note: %zu audit record(s) wait in %s until the audit log can be "
                 "written: %s\n",
                 *pending, o.enforcer->ledger_path().c_str(), log.error().message().c_str());
    return;
  }
  auto drained = o.enforcer->DrainAudit(
      [&](std::string_view type, nlohmann::json payload) -> core::Status {
        audit::RecordType t;
        if (!audit::ParseRecordType(type, &t)) {
          return core::DataLoss("audit outbox: unknown record type \"" + std::string(type) + "\"");
        }
        return (*log)->Append(t, std::move(payload));
      });
  core::Status closed = (*log)->Close();
  if (!drained.has_value() || !closed.ok()) {
    std::fprintf(stderr, "vigil: warning: audit log %s: %s\n", dir.c_str(),
                 (!drained.has_value() ? drained.error() : closed).message().c_str());
  }
}

core::Result<uint64_t> ParseId(const std::string& text, std::string_view what) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || id == 0 ||
      id > (uint64_t{1} << 62)) {
    return core::InvalidArgument(std::string(what) + " \"" + text.substr(0, 64) +
                                 "\": expected a positive number");
  }
  return id;
}

std::string Time(int64_t unix_ns) {
  if (unix_ns == 0) return "-";
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<time_t>(unix_ns / 1'000'000'000)));
}

nlohmann::json OutcomeJson(const enforce::Outcome& o) {
  nlohmann::json j = {{"id", o.id},
                      {"state", enforce::StateName(o.state)},
                      {"detail", o.detail},
                      {"error", o.error.ok() ? nlohmann::json(nullptr)
                                             : nlohmann::json(o.error.message())}};
  if (o.escalation_id != 0) j["escalation_id"] = o.escalation_id;
  return j;
}

int PrintOutcome(std::string_view command, const Common& c, const enforce::Outcome& o) {
  if (c.json) {
    std::printf("%s\n", OutcomeJson(o).dump().c_str());
  } else if (o.error.ok()) {
    std::printf("action %llu: %s: %s\n", static_cast<unsigned long long>(o.id),
                std::string(enforce::StateName(o.state)).c_str(), o.detail.c_str());
  }
  if (!o.error.ok()) return ReportError(command, o.error);
  return kExitOk;
}

std::string CurrentUser() {
  if (const char* sudo = std::getenv("SUDO_USER"); sudo != nullptr && *sudo != '\0') return sudo;
  if (passwd* pw = getpwuid(getuid()); pw != nullptr) return pw->pw_name;
  return "uid " + std::to_string(getuid());
}

// ---- vigil enforcement ----

struct EnforcementOptions {
  Common common;
  size_t limit = 0;
  std::string id;
  std::string action;
  std::string target;
  std::string rule;
  std::string reason = "manual action";
  bool monitor = false;
  std::string proposed = "freeze";
  std::string timeout = "15m";
  std::string on_timeout = "dismiss";
};

int RunList(const EnforcementOptions& o) {
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError("enforcement list", opened.error());
  auto entries = opened->enforcer->List(o.limit);
  if (!entries.has_value()) return ReportError("enforcement list", entries.error());
  DrainAudit(o.common, *opened);
  if (o.common.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : *entries) j.push_back(enforce::ToJson(e));
    std::printf("%s\n", j.dump().c_str());
    return kExitOk;
  }
  if (entries->empty()) {
    std::printf("no enforcement actions in %s\n", opened->enforcer->ledger_path().c_str());
    return kExitOk;
  }
  std::printf("%-6s %-20s %-13s %-24s %-11s %-8s %s\n", "ID", "TIME", "ACTION", "TARGET", "STATE",
              "MODE", "RULE / DETAIL");
  for (const auto& e : *entries) {
    std::printf("%-6llu %-20s %-13s %-24s %-11s %-8s %s%s%s\n",
                static_cast<unsigned long long>(e.id), Time(e.time_ns).c_str(),
                std::string(enforce::ActionKindName(e.action)).c_str(),
                e.target.ToString().c_str(), std::string(enforce::StateName(e.state)).c_str(),
                std::string(enforce::ModeName(e.mode)).c_str(),
                e.rule.empty() ? "(manual)" : e.rule.c_str(), " / ", e.detail.c_str());
    if (!e.rollback_detail.empty()) {
      std::printf("%-6s rolled back %s: %s\n", "", Time(e.rolled_back_ns).c_str(),
                  e.rollback_detail.c_str());
    }
  }
  return kExitOk;
}

int RunStats(const EnforcementOptions& o) {
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError("enforcement stats", opened.error());
  auto tally = opened->enforcer->Count();
  if (!tally.has_value()) return ReportError("enforcement stats", tally.error());
  constexpr enforce::State kStates[] = {enforce::State::kApplied, enforce::State::kFailed,
                                        enforce::State::kRolledBack, enforce::State::kMonitor,
                                        enforce::State::kApplying};
  nlohmann::json j = nlohmann::json::object();
  if (!o.common.json) {
    std::printf("%-14s %8s %8s %12s %20s %9s\n", "ACTION", "APPLIED", "FAILED", "ROLLED-BACK",
                "WOULD (MONITOR)", "APPLYING");
  }
  for (int i = 0; i < enforce::kActionKindCount; ++i) {
    const std::string name(enforce::ActionKindName(static_cast<enforce::ActionKind>(i)));
    uint64_t n[std::size(kStates)];
    for (size_t k = 0; k < std::size(kStates); ++k) {
      n[k] = tally->by_state[static_cast<size_t>(kStates[k])][i];
      j[name][std::string(enforce::StateName(kStates[k]))] = n[k];
    }
    if (!o.common.json) {
      std::printf("%-14s %8llu %8llu %12llu %20llu %9llu\n", name.c_str(),
                  static_cast<unsigned long long>(n[0]), static_cast<unsigned long long>(n[1]),
                  static_cast<unsigned long long>(n[2]), static_cast<unsigned long long>(n[3]),
                  static_cast<unsigned long long>(n[4]));
    }
  }
  if (o.common.json) std::printf("%s\n", j.dump().c_str());
  return kExitOk;
}

int RunRollback(const EnforcementOptions& o) {
  auto id = ParseId(o.id, "ID");
  if (!id.has_value()) return ReportError("enforcement rollback", id.error());
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError("enforcement rollback", opened.error());
  auto outcome = opened->enforcer->Rollback(*id);
  DrainAudit(o.common, *opened);
  if (!outcome.has_value()) return ReportError("enforcement rollback", outcome.error());
  return PrintOutcome("enforcement rollback", o.common, *outcome);
}

int RunApply(const EnforcementOptions& o) {
  enforce::ActionRequest r;
  if (!enforce::ParseActionKind(o.action, &r.action)) {
    return ReportError("enforcement apply",
                       core::InvalidArgument("action \"" + o.action +
                                             "\": expected alert, kill, freeze, block-network "
                                             "or escalate"));
  }
  auto target = enforce::ParseTarget(o.target);
  if (!target.has_value()) return ReportError("enforcement apply", target.error());
  r.target = *target;
  r.rule = o.rule;
  r.reason = o.reason;
  r.mode = o.monitor ? enforce::Mode::kMonitor : enforce::Mode::kEnforce;
  if (r.action == enforce::ActionKind::kEscalate) {
    if (!enforce::ParseActionKind(o.proposed, &r.proposed)) {
      return ReportError("enforcement apply",
                         core::InvalidArgument("--proposed \"" + o.proposed +
                                               "\": expected alert, kill, freeze or "
                                               "block-network"));
    }
    auto secs = core::ParseDurationSeconds(o.timeout);
    if (!secs.has_value()) return ReportError("enforcement apply", secs.error().WithContext("--timeout"));
    r.timeout_seconds = *secs;
    if (!enforce::ParseTimeoutDefault(o.on_timeout, &r.on_timeout)) {
      return ReportError("enforcement apply",
                         core::InvalidArgument("--on-timeout \"" + o.on_timeout +
                                               "\": expected dismiss or enforce"));
    }
  }
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError("enforcement apply", opened.error());
  auto outcome = opened->enforcer->Apply(r);
  DrainAudit(o.common, *opened);
  if (!outcome.has_value()) return ReportError("enforcement apply", outcome.error());
  return PrintOutcome("enforcement apply", o.common, *outcome);
}

// ---- vigil escalations ----

struct EscalationOptions {
  Common common;
  bool all = false;
  std::string id;
  std::string by;
};

int RunEscalationList(const EscalationOptions& o) {
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError("escalations list", opened.error());
  auto list = opened->enforcer->Escalations(/*pending_only=*/!o.all);
  DrainAudit(o.common, *opened);
  if (!list.has_value()) return ReportError("escalations list", list.error());
  if (o.common.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : *list) j.push_back(enforce::ToJson(e));
    std::printf("%s\n", j.dump().c_str());
    return kExitOk;
  }
  if (list->empty()) {
    std::printf("no %sescalations\n", o.all ? "" : "pending ");
    return kExitOk;
  }
  std::printf("%-6s %-10s %-14s %-24s %-20s %-8s %s\n", "ID", "STATE", "PROPOSED", "TARGET",
              "DEADLINE", "DEFAULT", "RULE / REASON");
  for (const auto& e : *list) {
    std::printf("%-6llu %-10s %-14s %-24s %-20s %-8s %s / %s\n",
                static_cast<unsigned long long>(e.id),
                std::string(enforce::EscalationStateName(e.state)).c_str(),
                std::string(enforce::ActionKindName(e.proposed)).c_str(),
                e.target.ToString().c_str(), Time(e.deadline_ns).c_str(),
                std::string(enforce::TimeoutDefaultName(e.on_timeout)).c_str(),
                e.rule.empty() ? "(manual)" : e.rule.c_str(), e.reason.c_str());
  }
  return kExitOk;
}

int RunDecide(const EscalationOptions& o, bool approve) {
  const std::string_view command = approve ? "escalations approve" : "escalations deny";
  auto id = ParseId(o.id, "ID");
  if (!id.has_value()) return ReportError(command, id.error());
  auto opened = OpenEnforcer(o.common);
  if (!opened.has_value()) return ReportError(command, opened.error());
  const std::string who = o.by.empty() ? CurrentUser() : o.by;
  auto outcome = approve ? opened->enforcer->Approve(*id, who) : opened->enforcer->Deny(*id, who);
  DrainAudit(o.common, *opened);
  if (!outcome.has_value()) return ReportError(command, outcome.error());
  return PrintOutcome(command, o.common, *outcome);
}

}  // namespace

RunFn AddEnforcementCommand(CLI::App& root) {
  auto o = std::make_shared<EnforcementOptions>();
  CLI::App* cmd = root.add_subcommand(
      "enforcement", "The enforcement ledger: every action Vigil took, and its rollback");
  cmd->require_subcommand(1);
  CLI::App* list = cmd->add_subcommand("list", "List enforcement actions, newest first");
  AddCommonFlags(list, &o->common);
  list->add_option("--limit", o->limit, "Show at most N actions (0: all)");
  CLI::App* stats = cmd->add_subcommand(
      "stats", "Count the ledger's actions by state, including what monitor mode would have "
               "enforced");
  AddCommonFlags(stats, &o->common);
  CLI::App* rollback = cmd->add_subcommand(
      "rollback", "Undo action ID (thaw and restore, unblock, withdraw, cancel); a kill "
                  "cannot be undone and is refused (exit 1)");
  rollback->add_option("ID", o->id, "Ledger id (from 'vigil enforcement list')")->required();
  AddCommonFlags(rollback, &o->common);
  CLI::App* apply = cmd->add_subcommand(
      "apply", "Carry out one action by hand, recorded in the ledger and the audit log");
  apply->add_option("ACTION", o->action, "alert, kill, freeze, block-network or escalate")
      ->required();
  apply->add_option("TARGET", o->target,
                    "pid:PID[@STARTTIME], pgid:PGID or cgroup:/PATH (below the cgroup v2 root)")
      ->required();
  apply->add_option("--rule", o->rule, "Rule to record as the cause");
  apply->add_option("--reason", o->reason, "Why, for the ledger")->capture_default_str();
  apply->add_flag("--monitor", o->monitor, "Monitor mode: record what would be done, do nothing");
  apply->add_option("--proposed", o->proposed, "escalate: the action approval carries out")
      ->capture_default_str();
  apply->add_option("--timeout", o->timeout, "escalate: time to answer (e.g. 90s, 15m, 2h)")
      ->capture_default_str();
  apply->add_option("--on-timeout", o->on_timeout,
                    "escalate: what happens unanswered: dismiss or enforce")
      ->capture_default_str();
  AddCommonFlags(apply, &o->common);
  return [o, list, stats, rollback, apply] {
    if (list->parsed()) return RunList(*o);
    if (stats->parsed()) return RunStats(*o);
    if (rollback->parsed()) return RunRollback(*o);
    if (apply->parsed()) return RunApply(*o);
    return kExitUsage;
  };
}

RunFn AddEscalationsCommand(CLI::App& root) {
  auto o = std::make_shared<EscalationOptions>();
  CLI::App* cmd = root.add_subcommand(
      "escalations", "Pending questions to a person: approve carries out the proposed action, "
                     "deny does nothing; unanswered ones take their default at the deadline");
  cmd->require_subcommand(1);
  CLI::App* list = cmd->add_subcommand("list", "List pending escalations (applies due expiries)");
  list->add_flag("--all", o->all, "Include decided, expired and cancelled ones");
  AddCommonFlags(list, &o->common);
  CLI::App* approve = cmd->add_subcommand("approve", "Approve escalation ID: carry out its action");
  CLI::App* deny = cmd->add_subcommand("deny", "Deny escalation ID: do nothing");
  for (CLI::App* sub : {approve, deny}) {
    sub->add_option("ID", o->id, "Escalation id (from 'vigil escalations list')")->required();
    sub->add_option("--by", o->by, "Who decides (default: $SUDO_USER or the current user)");
    AddCommonFlags(sub, &o->common);
  }
  return [o, list, approve, deny] {
    if (list->parsed()) return RunEscalationList(*o);
    if (approve->parsed()) return RunDecide(*o, /*approve=*/true);
    if (deny->parsed()) return RunDecide(*o, /*approve=*/false);
    return kExitUsage;
  };
}

}  // namespace vigil::app
