// vigil audit verify|show: check an audit log's hash chain and checkpoint signatures, and print
// its records.

#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "audit/verify.h"
#include "core/clock.h"
#include "core/config.h"

namespace vigil::app {
namespace {

struct AuditCmdOptions {
  std::string dir;
  std::string key;
  std::string config = std::string(core::kDefaultConfigPath);
  std::string since;
  std::vector<std::string> types;
  bool json = false;
};

// "2026-11-26T04:22:49.123456789Z".
std::string FormatTime(int64_t unix_ns) {
  const time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  const long frac = static_cast<long>(unix_ns % 1'000'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

// --since: an RFC 3339 UTC time ("2026-11-26T04:00:00Z", fractional seconds allowed) or a
// duration before now ("90s", "15m", "2h", "1d").
core::Result<int64_t> ParseSince(const std::string& text, const core::Clock& clock) {
  struct tm tm {};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest != nullptr) {
    int64_t frac_ns = 0;
    if (*rest == '.') {
      int64_t scale = 100'000'000;
      for (++rest; *rest >= '0' && *rest <= '9'; ++rest) {
        frac_ns += (*rest - '0') * scale;
        scale /= 10;
      }
    }
    if (std::string_view(rest) != "Z") {
      return core::InvalidArgument("--since: \"" + text +
                                   "\": expected a UTC time ending in Z, or a duration");
    }
    return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000 + frac_ns;
  }
  auto secs = core::ParseDurationSeconds(text);
  if (!secs.has_value()) {
    return core::InvalidArgument("--since: \"" + text +
                                 "\": expected a UTC time like 2026-01-02T03:04:05Z or a "
                                 "duration like 15m");
  }
  return clock.NowUnixNanos() - static_cast<int64_t>(*secs) * 1'000'000'000;
}

nlohmann::json ReportJson(const audit::VerifyReport& r) {
  nlohmann::json j = {{"ok", r.ok()},
                      {"segments", r.segments},
                      {"records", r.records},
                      {"checkpoints", r.checkpoints},
                      {"first_seq", r.first_seq},
                      {"last_seq", r.last_seq},
                      {"signed_through", r.signed_through},
                      {"last_checkpoint", r.last_checkpoint},
                      {"clean_close", r.clean_close},
                      {"key_ids", r.key_ids},
                      {"torn_tail", nullptr},
                      {"problem", nullptr}};
  if (r.torn_tail) {
    j["torn_tail"] = {{"segment", r.torn_tail->segment},
                      {"offset", r.torn_tail->offset},
                      {"bytes", r.torn_tail->bytes},
                      {"seq", r.torn_tail->seq}};
  }
  if (r.problem) {
    j["problem"] = {{"finding", audit::FindingName(r.problem->finding)},
                    {"seq", r.problem->seq},
                    {"segment", r.problem->segment},
                    {"offset", r.problem->offset},
                    {"detail", r.problem->detail}};
  }
  return j;
}

int RunVerify(const AuditCmdOptions& o) {
  audit::VerifyOptions vo;
  if (!o.key.empty()) {
    auto key = audit::LoadPublicKey(o.key);
    if (!key.has_value()) return ReportError("audit verify", key.error().WithContext("--key"));
    vo.key = *key;
  }
  auto report = audit::VerifyLog(o.dir, vo);
  if (!report.has_value()) return ReportError("audit verify", report.error());
  const audit::VerifyReport& r = *report;
  if (o.json) {
    nlohmann::json j = ReportJson(r);
    j["trusted_key"] = vo.key ? nlohmann::json(audit::KeyIdString(vo.key->id)) : nullptr;
    std::printf("%s\n", j.dump().c_str());
    return r.ok() ? kExitOk : kExitFailure;
  }
  if (r.ok()) {
    std::string keys;
    for (const std::string& k : r.key_ids) keys += (keys.empty() ? "" : ", ") + k;
    std::printf("%s: intact: records %" PRIu64 "..%" PRIu64 " in %" PRIu64
                " segments; %" PRIu64 " checkpoints signed by %s%s; signed through record %" PRIu64
                "%s\n",
                o.dir.c_str(), r.first_seq, r.last_seq, r.segments, r.checkpoints,
                keys.empty() ? "no key" : keys.c_str(), vo.key ? " (trusted --key)" : "",
                r.signed_through, r.clean_close ? "; closed cleanly" : "");
    if (r.last_seq > r.last_checkpoint) {
      std::printf("  records %" PRIu64 "..%" PRIu64
                  " are chained but not yet covered by a signed checkpoint\n",
                  r.last_checkpoint + 1, r.last_seq);
    }
  } else {
    const audit::Problem& p = *r.problem;
    std::printf("%s: record %" PRIu64 ": %s: %s (segment %s, offset %" PRIu64 ")\n",
                o.dir.c_str(), p.seq, std::string(audit::FindingName(p.finding)).c_str(),
                p.detail.c_str(), p.segment.c_str(), p.offset);
    if (r.records > 0) {
      std::printf("  records %" PRIu64 "..%" PRIu64 " before it verify\n", r.first_seq,
                  r.last_seq);
    }
  }
  if (r.torn_tail) {
    std::printf("  torn tail: %" PRIu64 " bytes of an incomplete record %" PRIu64
                " at offset %" PRIu64 " of %s (what a crash during a write leaves; the next "
                "writer cuts it off)\n",
                r.torn_tail->bytes, r.torn_tail->seq, r.torn_tail->offset,
                r.torn_tail->segment.c_str());
  }
  return r.ok() ? kExitOk : kExitFailure;
}

int RunShow(AuditCmdOptions o, const core::Clock& clock) {
  if (o.dir.empty()) {
    auto config = core::LoadConfig(o.config);
    if (!config.has_value()) return ReportError("audit show", config.error());
    o.dir = config->state_dir + "/audit";
  }
  int64_t since = INT64_MIN;
  if (!o.since.empty()) {
    auto s = ParseSince(o.since, clock);
    if (!s.has_value()) return ReportError("audit show", s.error());
    since = *s;
  }
  std::set<audit::RecordType> types;
  for (const std::string& t : o.types) {
    audit::RecordType rt{};
    if (!audit::ParseRecordType(t, &rt)) {
      return ReportError("audit show",
                         core::InvalidArgument("--type: unknown record type \"" + t + "\""));
    }
    types.insert(rt);
  }
  uint64_t shown = 0;
  auto report = audit::VerifyLog(o.dir, {}, [&](const audit::RecordView& v) {
    if (v.time_ns < since || (!types.empty() && types.count(v.type) == 0)) return true;
    ++shown;
    if (o.json) {
      nlohmann::json line = {{"seq", v.seq},
                             {"time", FormatTime(v.time_ns)},
                             {"time_ns", v.time_ns},
                             {"type", audit::RecordTypeName(v.type)},
                             {"payload", nlohmann::json::parse(v.payload, nullptr, false)}};
      std::printf("%s\n", audit::CanonicalJson(line).c_str());
    } else {
      std::printf("%8" PRIu64 "  %s  %-13s  %.*s\n", v.seq, FormatTime(v.time_ns).c_str(),
                  std::string(audit::RecordTypeName(v.type)).c_str(),
                  static_cast<int>(v.payload.size()), v.payload.data());
    }
    return true;
  });
  if (!report.has_value()) return ReportError("audit show", report.error());
  std::fflush(stdout);
  if (!report->ok()) {
    const audit::Problem& p = *report->problem;
    std::fprintf(stderr,
                 "vigil audit show: stopped at record %" PRIu64 ": %s: %s; run 'vigil audit "
                 "verify %s'\n",
                 p.seq, std::string(audit::FindingName(p.finding)).c_str(), p.detail.c_str(),
                 o.dir.c_str());
    return kExitFailure;
  }
  if (report->torn_tail) {
    std::fprintf(stderr, "vigil audit show: the log ends in a torn tail after record %" PRIu64
                         " (a crash during a write)\n",
                 report->last_seq);
  }
  return kExitOk;
}

}  // namespace

RunFn AddAuditCommand(CLI::App& root) {
  auto o = std::make_shared<AuditCmdOptions>();
  CLI::App* cmd = root.add_subcommand(
      "audit", "Verify and read the tamper-evident audit log (docs/audit-log-format.md)");
  cmd->require_subcommand(1);
  CLI::App* verify = cmd->add_subcommand(
      "verify",
      "Check every record's hash, the chain, the sequence and the checkpoint signatures. Exit "
      "0 when intact (a torn tail from a crash is reported, not a failure), 1 naming the first "
      "bad record and why (altered, missing, reordered, truncated, bad-signature, malformed)");
  verify->add_option("PATH", o->dir, "The audit log directory")->required();
  verify->add_option("--key", o->key,
                     "Trusted public key: every checkpoint must be signed by it (minisign .pub "
                     "file, its base64 key line, or 32 raw bytes)");
  verify->add_flag("--json", o->json, "Print the report as JSON");
  CLI::App* show = cmd->add_subcommand("show", "Print the records of an audit log, oldest first");
  show->add_option("PATH", o->dir, "The audit log directory (default <state_dir>/audit)");
  show->add_option("--config", o->config, "Config to read state_dir from")->capture_default_str();
  show->add_option("--since", o->since,
                   "Only records at or after this time: UTC like 2026-01-02T03:04:05Z, or a "
                   "duration before now like 15m");
  show->add_option("--type", o->types,
                   "Only these record types (repeatable or comma-separated): decision, "
                   "enforcement, rollback, fallback, escalation, policy-change, model-change, "
                   "mode-change, checkpoint, log-open, log-close, adjudication, access-grant")
      ->delimiter(',');
  show->add_flag("--json", o->json, "One JSON object per record (JSON Lines)");
  return [o, verify, show] {
    if (verify->parsed()) return RunVerify(*o);
    if (show->parsed()) return RunShow(*o, core::SystemClock::Get());
    return kExitUsage;
  };
}

}  // namespace vigil::app
