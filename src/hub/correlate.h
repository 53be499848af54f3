#pragma once

// The hub's global model: cross-host correlation over the fleet's findings (docs/hub.md,
// "Fleet incidents"). Two patterns raise a fleet incident:
//   - spread: the same rare behaviour on at least `min_hosts` distinct hosts within `window_ms`.
//     The behaviour's key is the finding's rule and process for a policy decision, or its model,
//     process and strongest explanation item for a model verdict; verdicts below `min_score` are
//     not rare enough to count.
//   - chain: a finding on host A that carries a network destination (OCSF dst_endpoint.ip) whose
//     address belongs to host B (the addresses agents registered with, SetAddresses), and a
//     finding on B at or after it, within `window_ms`.
// Windows are in the findings' own time (event time), so a late-delivered message correlates as
// if it had come in time.
//
// Correlator is the pure logic: not thread-safe, no I/O, bounded memory (at most max_keys
// behaviour keys and max_hosts hosts tracked; the least recently seen are dropped first and
// counted in dropped()). It raises a draft when a pattern appears or grows (more hosts); the
// store merges a draft into the fleet incident of the same kind and key whose span, widened by
// the window, overlaps it (Store::RaiseFleetIncident), so raising the same thing again — a
// redelivery, a restart that replays the recent findings — changes nothing.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "hub/requests.h"
#include "hub/store.h"

namespace vigil::hub {

struct CorrelatorOptions {
  int64_t window_ms = 600'000;  // T: 10 minutes
  int min_hosts = 3;            // K: distinct hosts for a spread, 2..1000
  double min_score = 0.5;       // verdicts scoring below this do not count
  size_t max_keys = 50'000;     // behaviour keys tracked
  size_t max_hosts = 50'000;    // hosts tracked for chains
  size_t max_hosts_per_key = 256;
};

enum class FleetIncidentKind : uint8_t { kSpread, kChain };
std::string_view FleetIncidentKindName(FleetIncidentKind k);  // "spread", "chain"
bool ParseFleetIncidentKind(std::string_view name, FleetIncidentKind* out);

// A fleet incident as the correlator sees it.
struct FleetIncidentDraft {
  FleetIncidentKind kind = FleetIncidentKind::kSpread;
  std::string key;                 // spread: the behaviour key; chain: "A->B"
  std::vector<std::string> hosts;  // spread: distinct, sorted; chain: {A, B}
  int64_t first_ms = 0, last_ms = 0;
  std::string summary;  // one line for people
};

// The behaviour key of a finding ("" when it does not count: a verdict below min_score).
std::string BehaviourKey(const Finding& f, double min_score);

class Correlator {
 public:
  explicit Correlator(CorrelatorOptions options) : options_(options) {}

  // Replaces the address -> host map chains use.
  void SetAddresses(std::unordered_map<std::string, std::string> address_to_host);
  // Feeds one host's findings; returns the drafts they raise or grow, in order.
  std::vector<FleetIncidentDraft> Observe(const std::string& host,
                                          const std::vector<Finding>& findings);

  size_t tracked_keys() const { return keys_.size(); }
  size_t tracked_hosts() const { return hosts_.size(); }
  uint64_t dropped() const { return dropped_; }
  const CorrelatorOptions& options() const { return options_; }

 private:
  struct KeyState {
    std::map<std::string, int64_t> hosts;  // host -> its latest finding time
    int64_t last_ms = 0;
    size_t raised = 0;         // hosts in the last draft raised (0: none in force)
    int64_t raised_until = 0;  // that draft's last time + window
    std::string summary;
  };
  struct Edge {
    std::string source;
    int64_t time_ms = 0;
  };
  struct HostState {
    std::deque<int64_t> times;  // its latest finding times (at most kTimesPerHost)
    std::deque<Edge> incoming;  // findings elsewhere that connected to it (at most kEdgesPerHost)
    std::map<std::string, int64_t> raised_from;  // source -> chain raised until
    int64_t last_ms = 0;
  };

  void Spread(const std::string& host, const Finding& f, const std::string& key,
              std::vector<FleetIncidentDraft>* out);
  void Chain(const std::string& host, const Finding& f, std::vector<FleetIncidentDraft>* out);
  void RaiseChain(const std::string& source, const std::string& target, int64_t from_ms,
                  int64_t to_ms, std::vector<FleetIncidentDraft>* out);
  void Bound();

  const CorrelatorOptions options_;
  std::unordered_map<std::string, std::string> address_to_host_;
  std::unordered_map<std::string, KeyState> keys_;
  std::unordered_map<std::string, HostState> hosts_;
  int64_t watermark_ms_ = 0;  // the latest finding time seen
  uint64_t dropped_ = 0;
};

// The correlator wired to the hub: after the store has stored findings (any ingestion path, see
// CorrelatingStore), Sync reads every finding stored since its last read — by this hub instance
// or by any other sharing the store (Store::FindingsAfter, in alert-id order) — feeds them to the
// correlator, stores what it raises (Store::RaiseFleetIncident) and appends one audit record
// (type "decision", action "fleet-incident-opened" or "fleet-incident-grown") per fleet incident
// created or grown. Thread-safe (one mutex around the correlator).
//
// Several hub instances on one store: each reads everyone's findings, so a spread whose findings
// were split between instances is raised by whichever instance reads the last of them (the one
// that stored it syncs after its commit, so some instance always sees them all); the store
// merges their raises into one fleet incident, audited once (by the instance whose raise created
// or grew it). Alert ids commit out of order under concurrent writers (PostgreSQL): an id below
// the highest read but not yet visible is a gap, looked for again (at most once a second) until
// it appears or kGapWaitMs passes (a transaction rolled back burns its ids); at most kMaxGaps
// ids below the highest read are waited for (a sequence that jumped further is not a gap).
// State: in memory, rebuilt at start from the store's findings of the last two windows (Rebuild),
// so a restart forgets nothing recent and raises nothing twice.
// Addresses for chains: every 30 s (and at Rebuild) from the agents' registrations
// (AgentStatusRow::status_json "addresses"); an address claimed by two hosts is ignored.
//
// Metrics: vigil_hub_fleet_incidents_total{kind,result="opened"|"grown"},
// vigil_hub_correlator_errors_total, vigil_hub_correlator_dropped_total.
class FleetCorrelation {
 public:
  static constexpr int64_t kGapWaitMs = 30'000;
  static constexpr int64_t kMaxGaps = 100'000;  // ids waited for below the highest read

  // Everything passed in must outlive this.
  FleetCorrelation(CorrelatorOptions options, Store& store, audit::AuditLog& audit,
                   const core::Clock& clock, core::Registry& registry);

  // Reads the store's recent findings (at most 100,000) into the correlator and raises what they
  // show; later Syncs read what is stored after them. Errors: the store's or the audit log's.
  core::Status Rebuild();
  // Reads and correlates the findings stored since the last read (every instance's); raises and
  // audits. An error leaves the findings stored (the next Sync or Rebuild reads them again).
  core::Status Sync();

  size_t tracked_keys();
  size_t open_gaps();

 private:
  core::Status ObserveLocked(const std::string& host, const std::vector<Finding>& findings);
  core::Status ObserveRowLocked(const StoredFinding& r);
  void AdvanceLocked();
  void RefreshAddressesLocked(bool force);
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }

  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  core::Registry& registry_;
  core::Counter* errors_ = nullptr;
  core::Counter* dropped_ = nullptr;
  std::mutex mu_;
  Correlator correlator_;
  int64_t addresses_ms_ = -1;  // when the addresses were last read (clock time)
  uint64_t dropped_seen_ = 0;
  // Alert ids read: every id <= cursor_ is done; seen_ holds those read above it, gaps_ those
  // above it not read yet (id -> when first missed, clock ms).
  int64_t cursor_ = 0;
  std::set<int64_t> seen_;
  std::map<int64_t, int64_t> gaps_;
  int64_t gaps_checked_ms_ = 0;
};

// A Store that, after it stores findings (not duplicates), has a FleetCorrelation read them and
// then calls the after-ingest hook (the triage scorer, hub/triage.h) with the results, so that
// every ingestion path — POST /v1/ingest, the NATS JetStream consumer, any other that calls
// Store::Ingest — feeds the global model and the triage model. Everything else is forwarded
// unchanged.
class CorrelatingStore : public Store {
 public:
  using AfterIngest = std::function<void(const std::vector<IngestResult>&)>;
  // `inner` and `correlation` must outlive this; a null correlation: none (correlation off).
  CorrelatingStore(Store& inner, FleetCorrelation& correlation)
      : inner_(inner), correlation_(&correlation) {}
  explicit CorrelatingStore(Store& inner) : inner_(inner) {}
  // Set before the store is used (not synchronised).
  void SetAfterIngest(AfterIngest fn) { after_ingest_ = std::move(fn); }

  core::Result<IngestResult> Ingest(const IngestMessage& m, int64_t now_ms) override;
  core::Result<std::vector<IngestResult>> IngestBatch(const std::vector<IngestMessage>& ms,
                                                      int64_t now_ms) override;
  core::Result<std::vector<IncidentRow>> Incidents(const IncidentFilter& f) override {
    return inner_.Incidents(f);
  }
  core::Result<IncidentRow> Incident(int64_t id) override { return inner_.Incident(id); }
  core::Result<std::vector<AlertRow>> Alerts(int64_t id) override { return inner_.Alerts(id); }
  core::Result<IncidentRow> Adjudicate(int64_t id, Label label, const std::string& who,
                                       const std::string& note, int64_t now_ms) override {
    return inner_.Adjudicate(id, label, who, note, now_ms);
  }
  core::Result<std::vector<AdjudicationCount>> AdjudicationCounts() override {
    return inner_.AdjudicationCounts();
  }
  core::Result<std::string> ExportLabels() override { return inner_.ExportLabels(); }
  core::Result<EscalationRow> OpenEscalation(const EscalationRequest& r, int64_t timeout_ms,
                                             int64_t now_ms, bool* created) override {
    return inner_.OpenEscalation(r, timeout_ms, now_ms, created);
  }
  core::Result<EscalationRow> Escalation(int64_t id) override { return inner_.Escalation(id); }
  core::Result<std::vector<EscalationRow>> Escalations(bool pending_only,
                                                       const std::string& host) override {
    return inner_.Escalations(pending_only, host);
  }
  core::Result<EscalationRow> Decide(int64_t id, Verdict v, const std::string& who,
                                     const std::string& note, int64_t now_ms) override {
    return inner_.Decide(id, v, who, note, now_ms);
  }
  core::Result<std::vector<EscalationRow>> ExpireEscalations(int64_t now_ms) override {
    return inner_.ExpireEscalations(now_ms);
  }
  core::Result<std::vector<AgentRow>> Agents() override { return inner_.Agents(); }
  core::Status RegisterAgent(const AgentStatusRow& r, int64_t now_ms) override {
    return inner_.RegisterAgent(r, now_ms);
  }
  core::Result<AgentStatusRow> Heartbeat(const std::string& host, const std::string& mode,
                                         const std::string& status_json, int64_t now_ms) override {
    return inner_.Heartbeat(host, mode, status_json, now_ms);
  }
  core::Result<std::vector<AgentStatusRow>> AgentStatuses() override {
    return inner_.AgentStatuses();
  }
  core::Result<bool> PutArtifact(const ArtifactRow& a) override { return inner_.PutArtifact(a); }
  core::Result<ArtifactRow> Artifact(const std::string& digest, bool content) override {
    return inner_.Artifact(digest, content);
  }
  core::Result<std::vector<ArtifactRow>> Artifacts() override { return inner_.Artifacts(); }
  core::Result<RolloutRow> StartRollout(const std::string& digest, const std::string& group,
                                        const std::string& who, int64_t now_ms) override {
    return inner_.StartRollout(digest, group, who, now_ms);
  }
  core::Result<RolloutRow> PromoteRollout(int64_t id, const std::string& who,
                                          int64_t now_ms) override {
    return inner_.PromoteRollout(id, who, now_ms);
  }
  core::Result<std::vector<RolloutRow>> Rollouts() override { return inner_.Rollouts(); }
  core::Result<FleetRaise> RaiseFleetIncident(const FleetIncidentRow& draft, int64_t window_ms,
                                              int64_t now_ms) override {
    return inner_.RaiseFleetIncident(draft, window_ms, now_ms);
  }
  core::Result<std::vector<FleetIncidentRow>> FleetIncidents(int64_t limit,
                                                             int64_t before_id) override {
    return inner_.FleetIncidents(limit, before_id);
  }
  core::Result<std::vector<StoredFinding>> RecentFindings(int64_t since_ms,
                                                          int64_t limit) override {
    return inner_.RecentFindings(since_ms, limit);
  }
  core::Result<std::vector<StoredFinding>> FindingsAfter(int64_t after_id,
                                                         int64_t limit) override {
    return inner_.FindingsAfter(after_id, limit);
  }
  core::Result<std::vector<IncidentFeatures>> TriageFeatures(
      const std::vector<int64_t>& ids) override {
    return inner_.TriageFeatures(ids);
  }
  core::Status SetTriage(const std::vector<TriageMark>& marks) override {
    return inner_.SetTriage(marks);
  }
  core::Result<int64_t> CountSuppressed() override { return inner_.CountSuppressed(); }
  core::Result<MissedDetectionRow> RecordMissedDetection(const MissedDetectionRow& m) override {
    return inner_.RecordMissedDetection(m);
  }
  core::Result<std::vector<MissedDetectionRow>> MissedDetections(int64_t limit) override {
    return inner_.MissedDetections(limit);
  }
  core::Result<std::vector<ScoreSample>> ScoreSamples(int64_t since_ms, int64_t limit) override {
    return inner_.ScoreSamples(since_ms, limit);
  }
  core::Result<bool> UseNonce(const std::string& nonce, int64_t expires_ms,
                              int64_t now_ms) override {
    return inner_.UseNonce(nonce, expires_ms, now_ms);
  }
  core::Status SetAttestation(const std::string& host, const std::string& state,
                              const std::string& reason) override {
    return inner_.SetAttestation(host, state, reason);
  }
  core::Status PutAttestedKey(const AttestedKeyRow& k) override {
    return inner_.PutAttestedKey(k);
  }
  core::Result<AttestedKeyRow> AttestedKey(const std::string& host) override {
    return inner_.AttestedKey(host);
  }
  core::Status PutAuditKey(const AuditKeyRow& k) override { return inner_.PutAuditKey(k); }
  core::Result<AuditKeyRow> AuditKey(const std::string& host) override {
    return inner_.AuditKey(host);
  }
  core::Status PutAuditKeyPin(const AuditKeyPinRow& p) override {
    return inner_.PutAuditKeyPin(p);
  }
  core::Result<AuditKeyPinRow> AuditKeyPin(const std::string& host) override {
    return inner_.AuditKeyPin(host);
  }
  core::Result<CheckpointPut> PutCheckpoint(const CheckpointRow& c) override {
    return inner_.PutCheckpoint(c);
  }
  core::Result<std::vector<CheckpointRow>> Checkpoints(const std::string& host,
                                                       int64_t limit) override {
    return inner_.Checkpoints(host, limit);
  }
  core::Status PutAgentCert(const AgentCertRow& c) override { return inner_.PutAgentCert(c); }
  core::Result<AgentCertRow> AgentCert(const std::string& sha256) override {
    return inner_.AgentCert(sha256);
  }
  core::Result<std::vector<AgentCertRow>> AgentCerts(const std::string& host,
                                                     int64_t limit) override {
    return inner_.AgentCerts(host, limit);
  }
  core::Result<AgentCertRow> RevokeAgentCert(const std::string& sha256, int64_t now_ms,
                                             const std::string& by,
                                             const std::string& reason) override {
    return inner_.RevokeAgentCert(sha256, now_ms, by, reason);
  }
  core::Result<bool> MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) override {
    return inner_.MarkAgentCertUsed(sha256, now_ms);
  }
  core::Result<int64_t> Count(const char* table) override { return inner_.Count(table); }

 private:
  // Has the correlator read what was stored, and calls the hook, when anything new had findings.
  void Feed(const std::vector<IngestResult>& results);

  Store& inner_;
  FleetCorrelation* correlation_ = nullptr;
  AfterIngest after_ingest_;
};

}  // namespace vigil::hub
