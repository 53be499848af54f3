#include "hub/server.h"

#include <httplib.h>
#include <unistd.h>

#include <charconv>

#include "api/frontend.h"
#include "hub/web.h"
#include "hub/fleet.h"
#include "hub/internal/http_reply.h"
#include "hub/triage.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

core::Status Denied(std::string m) {
  return core::Status(core::StatusCode::kPermissionDenied, std::move(m));
}

using internal::kJsonType;
using internal::Reply;
using internal::ReplyError;
using internal::ReplyStatus;

// The decimal id captured by a route's (\d+); 0 when it does not fit.
int64_t PathId(const httplib::Request& q) {
  const std::string& text = q.matches[1].str();
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : 0;
}

json Optional(const std::optional<double>& v) { return v ? json(*v) : json(); }

json AlertJson(const AlertRow& a) {
  json j = {{"id", a.id},
            {"kind", FindingKindName(a.kind)},
            {"time_ms", a.time_ms},
            {"severity_id", a.severity_id},
            {"uid", a.uid},
            {"title", a.title},
            {"message", a.message},
            {"rule", a.rule},
            {"action", a.action},
            {"model", a.model},
            {"model_version", a.model_version},
            {"score", Optional(a.score)}};
  j["explanation"] = json::parse(a.explanation_json, nullptr, false);
  if (j["explanation"].is_discarded()) j["explanation"] = json::array();
  j["finding"] = json::parse(a.raw, nullptr, false);
  if (j["finding"].is_discarded()) j["finding"] = nullptr;
  return j;
}

json FleetIncidentJson(const FleetIncidentRow& r) {
  return {{"id", r.id},           {"kind", r.kind},           {"key", r.key},
          {"hosts", r.hosts},     {"first_ms", r.first_ms},   {"last_ms", r.last_ms},
          {"summary", r.summary}, {"created_ms", r.created_ms}, {"updated_ms", r.updated_ms}};
}

json MissedJson(const MissedDetectionRow& m) {
  return {{"id", m.id},     {"host", m.host},       {"kind", m.kind},
          {"name", m.name}, {"time_ms", m.time_ms}, {"note", m.note},
          {"recorded_by", m.recorded_by}, {"recorded_ms", m.recorded_ms}};
}

// A non-negative integer query parameter into *out (unchanged when absent); false after
// answering 400.
bool QueryInt(const httplib::Request& q, const char* name, int64_t* out, httplib::Response& r) {
  if (!q.has_param(name)) return true;
  const std::string t = q.get_param_value(name);
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
  if (ec != std::errc() || end != t.data() + t.size() || *out < 0) {
    ReplyError(r, 400, "INVALID_ARGUMENT", std::string(name) + ": expected a non-negative integer");
    return false;
  }
  return true;
}

}  // namespace

Server::Server(ServerOptions options, Store& store, const HubAuth& auth, audit::AuditLog& audit,
               const core::Clock& clock, core::Registry& registry)
    : options_(std::move(options)),
      store_(store),
      auth_(auth),
      audit_(audit),
      clock_(clock),
      registry_(registry),
      fleet_(options_.fleet, store, audit, clock),
      checkpoints_(store, audit, clock, registry),
      certs_(store, audit, clock) {}

Server::~Server() { Stop(); }

json Server::IncidentJson(const IncidentRow& r) {
  json j = {{"id", r.id},
            {"host", r.host},
            {"pid", r.pid},
            {"process", r.process},
            {"first_ms", r.first_ms},
            {"last_ms", r.last_ms},
            {"alerts", r.alerts},
            {"verdicts", r.verdicts},
            {"decisions", r.decisions},
            {"max_score", Optional(r.max_score)},
            {"max_severity", r.max_severity},
            {"label", r.label ? json(LabelName(*r.label)) : json()},
            {"triage_score", Optional(r.triage_score)},
            {"triage", !r.triage_score         ? json()
                       : r.triage_suppressed ? json("suppressed")
                                             : json("kept")}};
  if (r.label) {
    j["labelled_by"] = r.labelled_by;
    j["labelled_ms"] = r.labelled_ms;
    j["note"] = r.note;
  }
  return j;
}

json Server::EscalationJson(const EscalationRow& r) {
  const auto outcome = r.outcome();
  return {{"id", r.id},
          {"host", r.request.host},
          {"escalation_id", r.request.escalation_id},
          {"rule", r.request.rule},
          {"action", r.request.action},
          {"reason", r.request.reason},
          {"pid", r.request.pid},
          {"process", r.request.process},
          {"created_ms", r.created_ms},
          {"deadline_ms", r.deadline_ms},
          {"default", VerdictName(r.request.default_verdict)},
          {"state", EscalationStateName(r.state)},
          {"outcome", outcome ? json(VerdictName(*outcome)) : json()},
          {"decided_by", r.decided_by},
          {"decided_ms", r.decided_ms},
          {"note", r.note}};
}

core::Status Server::Audit(audit::RecordType type, json payload) {
  core::Status s = audit_.Append(type, std::move(payload));
  if (!s.ok()) return core::Unavailable("audit log: " + s.message());
  return {};
}

core::Status Server::ExpireDue() {
  VIGIL_ASSIGN_OR_RETURN(auto expired, store_.ExpireEscalations(NowMs()));
  for (const EscalationRow& e : expired) {
    VIGIL_RETURN_IF_ERROR(
        Audit(audit::RecordType::kEscalation,
              {{"action", "timed_out"},
               {"escalation", e.id},
               {"host", e.request.host},
               {"escalation_id", e.request.escalation_id},
               {"rule", e.request.rule},
               {"proposed_action", e.request.action},
               {"outcome", VerdictName(e.request.default_verdict)},
               {"by", "hub"},
               {"note", "no decision before the deadline; the default applies"}}));
  }
  return {};
}

core::Result<EscalationRow> Server::OpenEscalation(const EscalationRequest& e,
                                                  const std::string& by, bool* created) {
  uint32_t timeout = e.timeout_s == 0 ? options_.escalation_timeout_s : e.timeout_s;
  timeout = std::min(timeout, options_.max_escalation_timeout_s);
  *created = false;
  VIGIL_ASSIGN_OR_RETURN(EscalationRow row,
                         store_.OpenEscalation(e, int64_t{timeout} * 1000, NowMs(), created));
  if (*created) {
    VIGIL_RETURN_IF_ERROR(Audit(audit::RecordType::kEscalation,
                                {{"action", "opened"},
                                 {"escalation", row.id},
                                 {"host", row.request.host},
                                 {"escalation_id", row.request.escalation_id},
                                 {"rule", row.request.rule},
                                 {"proposed_action", row.request.action},
                                 {"outcome", nullptr},
                                 {"by", by},
                                 {"note", row.request.reason}}));
  }
  return row;
}

core::Result<IngestResult> Server::IngestFromAgent(std::string_view body,
                                                   const std::string& caller_host,
                                                   std::string* message_id) {
  auto count = [this](const char* result, uint64_t n) {
    auto c = registry_.GetCounter("vigil_hub_ingest_messages_total", "Agent messages by outcome",
                                  {{"result", result}});
    if (c.has_value()) (*c)->Inc(n);
  };
  auto m = ParseIngestRequest(body);
  if (!m.has_value()) {
    count("rejected", 1);
    return m.error();
  }
  if (m->host != caller_host) {
    return core::Status(core::StatusCode::kPermissionDenied,
                        "agent \"" + caller_host + "\" may not act for host \"" + m->host + "\"");
  }
  *message_id = m->message_id;
  VIGIL_ASSIGN_OR_RETURN(IngestResult res, store_.Ingest(*m, NowMs()));
  count(res.duplicate ? "duplicate" : "stored", 1);
  auto findings = registry_.GetCounter("vigil_hub_findings_total", "Findings stored");
  if (findings.has_value()) (*findings)->Inc(res.findings);
  return res;
}

core::Result<EscalationRow> Server::HostEscalation(int64_t id, const std::string& host) {
  VIGIL_RETURN_IF_ERROR(ExpireDue());
  VIGIL_ASSIGN_OR_RETURN(EscalationRow row, store_.Escalation(id));
  if (row.request.host != host) {
    return Denied("agent \"" + host + "\" may not act for host \"" +
                                  row.request.host + "\"");
  }
  return row;
}

core::Status Server::RefreshMetrics() {
  VIGIL_ASSIGN_OR_RETURN(auto counts, store_.AdjudicationCounts());
  for (const AdjudicationCount& c : counts) {
    const core::Labels who = {{"kind", c.kind}, {"name", c.name}};
    const std::pair<const char*, int64_t> per_label[] = {{"true_positive", c.true_positive},
                                                         {"false_positive", c.false_positive},
                                                         {"benign", c.benign}};
    for (const auto& [label, n] : per_label) {
      core::Labels l = who;
      l.emplace_back("label", label);
      auto g =
          registry_.GetGauge("vigil_hub_adjudicated_incidents",
                             "Adjudicated incidents in which the rule or model fired, by label", l);
      if (g.has_value()) (*g)->Set(static_cast<double>(n));
    }
    const double total = static_cast<double>(c.true_positive + c.false_positive + c.benign);
    auto p = registry_.GetGauge(
        "vigil_hub_precision",
        "true_positive / adjudicated incidents in which the rule or model fired", who);
    if (p.has_value()) (*p)->Set(total > 0 ? c.true_positive / total : 0);
    auto f = registry_.GetGauge(
        "vigil_hub_false_positive_ratio",
        "(false_positive + benign) / adjudicated incidents in which the rule or model fired", who);
    if (f.has_value()) (*f)->Set(total > 0 ? (c.false_positive + c.benign) / total : 0);
    auto missed = registry_.GetGauge("vigil_hub_missed_detections",
                                     "Missed detections (false negatives) recorded for the rule "
                                     "or model",
                                     who);
    if (missed.has_value()) (*missed)->Set(static_cast<double>(c.false_negative));
    const double should = static_cast<double>(c.true_positive + c.false_negative);
    auto fnr = registry_.GetGauge(
        "vigil_hub_false_negative_rate",
        "false_negative / (true_positive + false_negative) for the rule or model", who);
    if (fnr.has_value()) (*fnr)->Set(should > 0 ? c.false_negative / should : 0);
  }
  if (triage_ != nullptr) triage_->RefreshMetrics();
  VIGIL_ASSIGN_OR_RETURN(auto pending, store_.Escalations(true, ""));
  auto g = registry_.GetGauge("vigil_hub_escalations_pending", "Escalations waiting for a person");
  if (g.has_value()) (*g)->Set(static_cast<double>(pending.size()));
  return {};
}

core::Status Server::Start() {
  std::unique_ptr<httplib::Server> server;
  try {
    if (options_.tls) {
      for (const std::string* f : {&options_.tls->cert, &options_.tls->key}) {
        if (::access(f->c_str(), R_OK) != 0) {
          return core::NotFound("hub tls: \"" + *f + "\": cannot read");
        }
      }
      auto ssl = std::make_unique<httplib::SSLServer>(options_.tls->cert.c_str(),
                                                      options_.tls->key.c_str());
      if (!ssl->is_valid()) {
        return core::InvalidArgument("hub tls: \"" + options_.tls->cert + "\" / \"" +
                                     options_.tls->key +
                                     "\": not a usable PEM certificate chain and its key");
      }
      server = std::move(ssl);
    } else {
      server = std::make_unique<httplib::Server>();
    }
    const int threads = std::max(1, options_.threads);
    server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server->set_payload_max_length(kMaxRequestBytes);
    server->set_read_timeout(10, 0);
    server->set_write_timeout(10, 0);
    Routes(*server);
  } catch (const std::exception& e) {
    return core::Internal(std::string("hub: ") + e.what());
  }
  return listener_.Start(std::move(server), options_.listen, "hub");
}

void Server::Stop() { listener_.Stop(); }

void Server::Routes(httplib::Server& s) {
  auto* refused = [this] {
    auto c = registry_.GetCounter("vigil_hub_requests_refused_total",
                                  "Requests refused for credentials", {{"reason", "401"}});
    return c.has_value() ? *c : nullptr;
  }();
  auto* forbidden = [this] {
    auto c = registry_.GetCounter("vigil_hub_requests_refused_total",
                                  "Requests refused for credentials", {{"reason", "403"}});
    return c.has_value() ? *c : nullptr;
  }();

  // Registered now so that /metrics shows them before the first message (IngestFromAgent counts).
  for (const char* result : {"stored", "duplicate", "rejected"}) {
    (void)registry_.GetCounter("vigil_hub_ingest_messages_total", "Agent messages by outcome",
                               {{"result", result}});
  }
  (void)registry_.GetCounter("vigil_hub_findings_total", "Findings stored");

  // Checks the bearer token for `need`; on failure answers 401/403 and returns false.
  auto authorize = [this, refused, forbidden](const httplib::Request& q, httplib::Response& r,
                                              Role need, Caller* caller) {
    AuthCheck c = auth_.Check(q.get_header_value("Authorization"), need,
                              clock_.NowUnixNanos() / 1'000'000'000);
    if (c.failure == AuthFailure::kUnauthenticated) {
      if (refused != nullptr) refused->Inc();
      r.set_header("WWW-Authenticate", "Bearer realm=\"vigil-hub\"");
      ReplyError(r, 401, "UNAUTHENTICATED", c.reason);
      return false;
    }
    if (c.failure == AuthFailure::kForbidden) {
      if (forbidden != nullptr) forbidden->Inc();
      ReplyError(r, 403, "PERMISSION_DENIED", c.reason);
      return false;
    }
    *caller = std::move(c.caller);
    return true;
  };
  // An agent may act only for the host its token names.
  auto own_host = [](const Caller& c, const std::string& host, httplib::Response& r) {
    if (c.subject == host) return true;
    ReplyError(r, 403, "PERMISSION_DENIED",
               "agent \"" + c.subject + "\" may not act for host \"" + host + "\"");
    return false;
  };

  s.Get("/healthz", [](const httplib::Request&, httplib::Response& r) {
    r.set_content(R"({"status":"ok"})", kJsonType);
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    if (core::Status st = RefreshMetrics(); !st.ok()) return ReplyStatus(r, st);
    r.set_content(registry_.ExpositionText(), std::string(core::kPrometheusTextContentType));
  });

  s.Post("/v1/ingest", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    std::string message_id;
    auto res = IngestFromAgent(q.body, c.subject, &message_id);
    if (!res.has_value()) return ReplyStatus(r, res.error());
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"message_id", message_id},
           {"duplicate", res->duplicate},
           {"findings", res->findings},
           {"new_incidents", res->new_incidents},
           {"incidents", res->incidents}});
  });

  s.Get("/v1/incidents", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    IncidentFilter f;
    f.host = q.get_param_value("host");
    if (q.has_param("adjudicated")) {
      const std::string a = q.get_param_value("adjudicated");
      if (a != "true" && a != "false") {
        return ReplyError(r, 400, "INVALID_ARGUMENT", "adjudicated: expected true or false");
      }
      f.adjudicated = a == "true";
    }
    if (q.has_param("suppressed")) {
      const std::string a = q.get_param_value("suppressed");
      if (a != "true" && a != "false") {
        return ReplyError(r, 400, "INVALID_ARGUMENT", "suppressed: expected true or false");
      }
      f.suppressed = a == "true";
    }
    if (!QueryInt(q, "limit", &f.limit, r) || !QueryInt(q, "before", &f.before_id, r)) return;
    auto rows = store_.Incidents(f);
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const IncidentRow& row : *rows) list.push_back(IncidentJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"incidents", std::move(list)}});
  });

  s.Get(R"(/v1/incidents/(\d+))", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    auto row = store_.Incident(PathId(q));
    if (!row.has_value()) return ReplyStatus(r, row.error());
    auto alerts = store_.Alerts(row->id);
    if (!alerts.has_value()) return ReplyStatus(r, alerts.error());
    json j = IncidentJson(*row);
    j["alerts"] = json::array();
    for (const AlertRow& a : *alerts) j["alerts"].push_back(AlertJson(a));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"incident", std::move(j)}});
  });

  s.Post(R"(/v1/incidents/(\d+)/adjudication)",
         [=, this](const httplib::Request& q, httplib::Response& r) {
           Caller c;
           if (!authorize(q, r, Role::kAnalyst, &c)) return;
           auto a = ParseAdjudicationRequest(q.body);
           if (!a.has_value()) return ReplyStatus(r, a.error());
           auto before = store_.Adjudicate(PathId(q), a->label, c.subject, a->note, NowMs());
           if (!before.has_value()) return ReplyStatus(r, before.error());
           core::Status st =
               Audit(audit::RecordType::kAdjudication,
                     {{"incident", before->id},
                      {"host", before->host},
                      {"label", LabelName(a->label)},
                      {"previous_label", before->label ? json(LabelName(*before->label)) : json()},
                      {"by", c.subject},
                      {"note", a->note}});
           if (!st.ok()) return ReplyStatus(r, st);
           auto now = store_.Incident(before->id);
           if (!now.has_value()) return ReplyStatus(r, now.error());
           Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"incident", IncidentJson(*now)}});
         });

  s.Get("/v1/labels", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    auto text = store_.ExportLabels();
    if (!text.has_value()) return ReplyStatus(r, text.error());
    r.set_content(*text, "application/x-ndjson");
  });

  s.Get("/v1/fleet-incidents", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    int64_t limit = 100, before = 0;
    if (!QueryInt(q, "limit", &limit, r) || !QueryInt(q, "before", &before, r)) return;
    auto rows = store_.FleetIncidents(limit, before);
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const FleetIncidentRow& row : *rows) list.push_back(FleetIncidentJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"fleet_incidents", std::move(list)}});
  });

  s.Post("/v1/missed-detections", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAnalyst, &c)) return;
    auto m = ParseMissedDetectionRequest(q.body);
    if (!m.has_value()) return ReplyStatus(r, m.error());
    MissedDetectionRow row{0, m->host, m->kind, m->name, m->time_ms, m->note, c.subject, NowMs()};
    auto saved = store_.RecordMissedDetection(row);
    if (!saved.has_value()) return ReplyStatus(r, saved.error());
    core::Status st = Audit(audit::RecordType::kAdjudication,
                            {{"action", "missed-detection"},
                             {"missed_detection", saved->id},
                             {"host", saved->host},
                             {saved->kind, saved->name},
                             {"time_ms", saved->time_ms},
                             {"label", "false_negative"},
                             {"by", c.subject},
                             {"note", saved->note}});
    if (!st.ok()) return ReplyStatus(r, st);
    Reply(r, 201, {{"schema_version", kHubSchemaVersion}, {"missed_detection", MissedJson(*saved)}});
  });

  s.Get("/v1/missed-detections", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    int64_t limit = 100;
    if (!QueryInt(q, "limit", &limit, r)) return;
    auto rows = store_.MissedDetections(limit);
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const MissedDetectionRow& row : *rows) list.push_back(MissedJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"missed_detections", std::move(list)}});
  });

  s.Post("/v1/escalations", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto e = ParseEscalationRequest(q.body);
    if (!e.has_value()) return ReplyStatus(r, e.error());
    if (!own_host(c, e->host, r)) return;
    bool created = false;
    auto row = OpenEscalation(*e, c.subject, &created);
    if (!row.has_value()) return ReplyStatus(r, row.error());
    Reply(r, created ? 201 : 200,
          {{"schema_version", kHubSchemaVersion}, {"escalation", EscalationJson(*row)}});
  });

  s.Get("/v1/escalations", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    const std::string state = q.has_param("state") ? q.get_param_value("state") : "pending";
    if (state != "pending" && state != "all") {
      return ReplyError(r, 400, "INVALID_ARGUMENT", "state: expected pending or all");
    }
    if (core::Status st = ExpireDue(); !st.ok()) return ReplyStatus(r, st);
    auto rows = store_.Escalations(state == "pending", q.get_param_value("host"));
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const EscalationRow& row : *rows) list.push_back(EscalationJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"escalations", std::move(list)}});
  });

  s.Get(R"(/v1/escalations/(\d+))", [=, this](const httplib::Request& q, httplib::Response& r) {
    // People with viewer or above, or the agent of the escalation's host.
    AuthCheck a = auth_.Check(q.get_header_value("Authorization"), Role::kAgent,
                              clock_.NowUnixNanos() / 1'000'000'000);
    const bool as_agent = a.failure == AuthFailure::kNone;
    Caller c;
    if (!as_agent && !authorize(q, r, Role::kViewer, &c)) return;
    if (as_agent) {
      auto row = HostEscalation(PathId(q), a.caller.subject);
      if (!row.has_value()) return ReplyStatus(r, row.error());
      return Reply(r, 200,
                   {{"schema_version", kHubSchemaVersion}, {"escalation", EscalationJson(*row)}});
    }
    if (core::Status st = ExpireDue(); !st.ok()) return ReplyStatus(r, st);
    auto row = store_.Escalation(PathId(q));
    if (!row.has_value()) return ReplyStatus(r, row.error());
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"escalation", EscalationJson(*row)}});
  });

  s.Post(R"(/v1/escalations/(\d+)/decision)", [=, this](const httplib::Request& q,
                                                        httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAnalyst, &c)) return;
    auto d = ParseDecisionRequest(q.body);
    if (!d.has_value()) return ReplyStatus(r, d.error());
    if (core::Status st = ExpireDue(); !st.ok()) return ReplyStatus(r, st);
    auto row = store_.Decide(PathId(q), d->verdict, c.subject, d->note, NowMs());
    if (!row.has_value()) return ReplyStatus(r, row.error());
    core::Status st =
        Audit(audit::RecordType::kEscalation, {{"action", EscalationStateName(row->state)},
                                               {"escalation", row->id},
                                               {"host", row->request.host},
                                               {"escalation_id", row->request.escalation_id},
                                               {"rule", row->request.rule},
                                               {"proposed_action", row->request.action},
                                               {"outcome", VerdictName(d->verdict)},
                                               {"by", c.subject},
                                               {"note", d->note}});
    if (!st.ok()) return ReplyStatus(r, st);
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"escalation", EscalationJson(*row)}});
  });

  fleet_.Routes(s, authorize);
  checkpoints_.Routes(s, authorize);
  certs_.Routes(s, authorize);

  // The triage model (hub/triage.h).
  auto no_triage = [](httplib::Response& r) {
    ReplyError(r, 503, "UNAVAILABLE", "this hub runs no triage service");
  };
  s.Get("/v1/triage", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kViewer, &c)) return;
    if (triage_ == nullptr) return no_triage(r);
    json j = triage_->Status();
    j["schema_version"] = kHubSchemaVersion;
    Reply(r, 200, j);
  });
  s.Post("/v1/triage/train", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    if (triage_ == nullptr) return no_triage(r);
    auto req = ParseTriageTrainRequest(q.body);
    if (!req.has_value()) return ReplyStatus(r, req.error());
    auto trained = triage_->Train(*req, c.subject);
    if (!trained.has_value()) return ReplyStatus(r, trained.error());
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"trained", std::move(trained).value()}});
  });
  s.Post("/v1/triage/model", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    if (triage_ == nullptr) return no_triage(r);
    const json j = json::parse(q.body, nullptr, false);
    if (!j.is_object() || !j.contains("path") || !j["path"].is_string() ||
        j["path"].get<std::string>().empty() || j["path"].get<std::string>().size() > 4096) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "path: expected the model file's path on the hub (1..4096 bytes)");
    }
    if (core::Status st = triage_->Load(j["path"].get<std::string>(), c.subject); !st.ok()) {
      return ReplyStatus(r, st);
    }
    json out = triage_->Status();
    out["schema_version"] = kHubSchemaVersion;
    Reply(r, 200, out);
  });

  s.Post("/v1/tokens", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    const json j = json::parse(q.body, nullptr, false);
    Role role;
    if (!j.is_object() || !j.contains("role") || !j["role"].is_string() ||
        !ParseRole(j["role"].get<std::string>(), &role)) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "role: expected viewer, analyst, admin or agent");
    }
    if (!j.contains("subject") || !j["subject"].is_string() ||
        j["subject"].get<std::string>().empty() || j["subject"].get<std::string>().size() > 256) {
      return ReplyError(r, 400, "INVALID_ARGUMENT", "subject: expected 1..256 bytes");
    }
    int64_t ttl = 900;
    if (j.contains("ttl_s")) {
      if (!j["ttl_s"].is_number_integer() || j["ttl_s"].get<int64_t>() < 1 ||
          j["ttl_s"].get<int64_t>() > options_.max_token_ttl_s) {
        return ReplyError(r, 400, "INVALID_ARGUMENT",
                          "ttl_s: expected 1.." + std::to_string(options_.max_token_ttl_s));
      }
      ttl = j["ttl_s"].get<int64_t>();
    }
    const std::string subject = j["subject"].get<std::string>();
    const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
    core::Status st = Audit(audit::RecordType::kAccessGrant, {{"action", "token-issued"},
                                                              {"subject", subject},
                                                              {"role", RoleName(role)},
                                                              {"expires", now + ttl},
                                                              {"by", c.subject}});
    if (!st.ok()) return ReplyStatus(r, st);
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"token", auth_.Issue(subject, role, ttl, now)},
           {"expires", now + ttl}});
  });

  WebDeps web;
  web.store = &store_;
  web.auth = &auth_;
  web.clock = &clock_;
  web.registry = &registry_;
  web.authorize = authorize;
  web.audit = [this](audit::RecordType t, json p) { return Audit(t, std::move(p)); };
  web.users_file = options_.users_file;
  web.login_ttl_s = options_.login_ttl_s;
  AddWebRoutes(s, std::move(web));

  s.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr) {
    ReplyError(r, 500, "INTERNAL", "internal error");
  });
  s.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    if (r.status == 404) {
      ReplyError(r, 404, "NOT_FOUND", "no route " + q.method + " " + q.path);
    } else if (r.status == 413) {
      ReplyError(r, 413, "INVALID_ARGUMENT", "request body over 8 MiB");
    }
  });
}

}  // namespace vigil::hub
