#include "hub/correlate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

namespace vigil::hub {
namespace {

constexpr size_t kTimesPerHost = 32;
constexpr size_t kEdgesPerHost = 64;

// Drops the least recently seen entries of `m` until it holds at most `cap` (down to 90% of it,
// so that the scan runs once per many insertions). Returns how many were dropped.
template <typename Map>
size_t DropOldest(Map& m, size_t cap) {
  if (m.size() <= cap) return 0;
  const size_t keep = cap - cap / 10;
  std::vector<int64_t> times;
  times.reserve(m.size());
  for (const auto& [k, v] : m) times.push_back(v.last_ms);
  std::nth_element(times.begin(), times.begin() + static_cast<long>(m.size() - keep - 1),
                   times.end());
  const int64_t cut = times[m.size() - keep - 1];
  size_t dropped = 0;
  for (auto it = m.begin(); it != m.end() && m.size() > keep;) {
    if (it->second.last_ms <= cut) {
      it = m.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

}  // namespace

std::string_view FleetIncidentKindName(FleetIncidentKind k) {
  return k == FleetIncidentKind::kChain ? "chain" : "spread";
}

bool ParseFleetIncidentKind(std::string_view name, FleetIncidentKind* out) {
  for (FleetIncidentKind k : {FleetIncidentKind::kSpread, FleetIncidentKind::kChain}) {
    if (name == FleetIncidentKindName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

std::string BehaviourKey(const Finding& f, double min_score) {
  if (f.kind == FindingKind::kDecision) {
    if (f.rule.empty()) return "";
    return "rule:" + f.rule + "|process:" + f.process;
  }
  if (!f.score || *f.score < min_score || f.model.empty()) return "";
  std::string key = "model:" + f.model + "|process:" + f.process;
  const FindingEvidence* top = nullptr;
  for (const FindingEvidence& e : f.explanation) {
    if (top == nullptr || e.weight > top->weight) top = &e;
  }
  if (top != nullptr) key += "|why:" + top->what;
  return key;
}

void Correlator::SetAddresses(std::unordered_map<std::string, std::string> address_to_host) {
  address_to_host_ = std::move(address_to_host);
}

std::vector<FleetIncidentDraft> Correlator::Observe(const std::string& host,
                                                    const std::vector<Finding>& findings) {
  std::vector<FleetIncidentDraft> out;
  for (const Finding& f : findings) {
    watermark_ms_ = std::max(watermark_ms_, f.time_ms);
    const std::string key = BehaviourKey(f, options_.min_score);
    if (!key.empty()) Spread(host, f, key, &out);
    Chain(host, f, &out);
  }
  Bound();
  return out;
}

void Correlator::Spread(const std::string& host, const Finding& f, const std::string& key,
                        std::vector<FleetIncidentDraft>* out) {
  const int64_t w = options_.window_ms;
  KeyState& k = keys_[key];
  k.last_ms = std::max(k.last_ms, f.time_ms);
  if (k.summary.empty()) {
    k.summary = f.kind == FindingKind::kDecision ? "rule " + f.rule : "model " + f.model;
    if (!f.process.empty()) k.summary += " on process " + f.process;
  }
  int64_t& seen = k.hosts[host];
  seen = std::max(seen, f.time_ms);
  // Hosts whose latest finding fell out of every window still open are forgotten.
  for (auto it = k.hosts.begin(); it != k.hosts.end();) {
    it = it->second < watermark_ms_ - 2 * w ? k.hosts.erase(it) : std::next(it);
  }
  while (k.hosts.size() > options_.max_hosts_per_key) {
    auto oldest = std::min_element(k.hosts.begin(), k.hosts.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    k.hosts.erase(oldest);
    ++dropped_;
  }
  FleetIncidentDraft d;
  d.kind = FleetIncidentKind::kSpread;
  d.key = key;
  d.first_ms = f.time_ms;
  d.last_ms = f.time_ms;
  for (const auto& [h, t] : k.hosts) {
    if (t < f.time_ms - w || t > f.time_ms + w) continue;
    d.hosts.push_back(h);  // std::map: sorted
    d.first_ms = std::min(d.first_ms, t);
    d.last_ms = std::max(d.last_ms, t);
  }
  if (k.raised != 0 && f.time_ms > k.raised_until) k.raised = 0;  // that one is over
  if (d.hosts.size() < static_cast<size_t>(options_.min_hosts) || d.hosts.size() <= k.raised) {
    return;
  }
  k.raised = d.hosts.size();
  k.raised_until = d.last_ms + w;
  d.summary = k.summary + " on " + std::to_string(d.hosts.size()) + " hosts within " +
              std::to_string(w / 1000) + " s";
  out->push_back(std::move(d));
}

void Correlator::RaiseChain(const std::string& source, const std::string& target,
                            int64_t from_ms, int64_t to_ms, std::vector<FleetIncidentDraft>* out) {
  HostState& t = hosts_[target];
  auto [it, fresh] = t.raised_from.try_emplace(source, 0);
  if (!fresh && from_ms <= it->second) return;  // raised already for this window
  it->second = to_ms + options_.window_ms;
  FleetIncidentDraft d;
  d.kind = FleetIncidentKind::kChain;
  d.key = source + "->" + target;
  d.hosts = {source, target};
  d.first_ms = from_ms;
  d.last_ms = to_ms;
  d.summary = "a finding on " + source + " connected to " + target + ", then a finding on " +
              target + " " + std::to_string((to_ms - from_ms) / 1000) + " s later";
  out->push_back(std::move(d));
}

void Correlator::Chain(const std::string& host, const Finding& f,
                       std::vector<FleetIncidentDraft>* out) {
  const int64_t w = options_.window_ms;
  // This host as the target of earlier connections.
  {
    HostState& me = hosts_[host];
    me.last_ms = std::max(me.last_ms, f.time_ms);
    std::vector<std::pair<std::string, int64_t>> hits;
    for (auto it = me.incoming.begin(); it != me.incoming.end();) {
      if (it->time_ms < watermark_ms_ - 2 * w) {
        it = me.incoming.erase(it);
        continue;
      }
      if (it->source != host && it->time_ms <= f.time_ms && f.time_ms <= it->time_ms + w) {
        hits.emplace_back(it->source, it->time_ms);
      }
      ++it;
    }
    for (const auto& [source, t] : hits) RaiseChain(source, host, t, f.time_ms, out);
    HostState& again = hosts_[host];  // RaiseChain may have rehashed hosts_
    again.times.push_back(f.time_ms);
    if (again.times.size() > kTimesPerHost) again.times.pop_front();
  }
  // This finding as a connection to another host.
  if (f.dst_ip.empty()) return;
  auto target = address_to_host_.find(f.dst_ip);
  if (target == address_to_host_.end() || target->second == host) return;
  HostState& t = hosts_[target->second];
  t.last_ms = std::max(t.last_ms, f.time_ms);
  int64_t after = -1;  // the target's earliest finding within the window after this one
  for (int64_t when : t.times) {
    if (when >= f.time_ms && when <= f.time_ms + w && (after < 0 || when < after)) after = when;
  }
  t.incoming.push_back({host, f.time_ms});
  if (t.incoming.size() > kEdgesPerHost) t.incoming.pop_front();
  if (after >= 0) RaiseChain(host, target->second, f.time_ms, after, out);
}

void Correlator::Bound() {
  const int64_t horizon = watermark_ms_ - 2 * options_.window_ms;
  if (keys_.size() > options_.max_keys) {
    for (auto it = keys_.begin(); it != keys_.end();) {
      it = it->second.last_ms < horizon ? keys_.erase(it) : std::next(it);  // expired: no loss
    }
    dropped_ += DropOldest(keys_, options_.max_keys);
  }
  if (hosts_.size() > options_.max_hosts) {
    for (auto it = hosts_.begin(); it != hosts_.end();) {
      it = it->second.last_ms < horizon ? hosts_.erase(it) : std::next(it);
    }
    dropped_ += DropOldest(hosts_, options_.max_hosts);
  }
}

FleetCorrelation::FleetCorrelation(CorrelatorOptions options, Store& store,
                                   audit::AuditLog& audit, const core::Clock& clock,
                                   core::Registry& registry)
    : store_(store), audit_(audit), clock_(clock), registry_(registry), correlator_(options) {
  auto e = registry_.GetCounter("vigil_hub_correlator_errors_total",
                                "Fleet incidents the correlator could not store or audit");
  if (e.has_value()) errors_ = *e;
  auto d = registry_.GetCounter("vigil_hub_correlator_dropped_total",
                                "Correlation state dropped to stay within its memory bound");
  if (d.has_value()) dropped_ = *d;
}

size_t FleetCorrelation::tracked_keys() {
  std::lock_guard lock(mu_);
  return correlator_.tracked_keys();
}

void FleetCorrelation::RefreshAddressesLocked(bool force) {
  const int64_t now = NowMs();
  if (!force && addresses_ms_ >= 0 && now - addresses_ms_ < 30'000) return;
  addresses_ms_ = now;
  auto agents = store_.AgentStatuses();
  if (!agents.has_value()) {
    spdlog::warn("hub: correlator: reading agents' addresses: {}", agents.error().message());
    return;
  }
  std::unordered_map<std::string, std::string> map;
  std::unordered_map<std::string, bool> ambiguous;
  for (const AgentStatusRow& a : *agents) {
    const nlohmann::json j = nlohmann::json::parse(a.status_json, nullptr, false);
    if (!j.is_object() || !j.contains("addresses") || !j["addresses"].is_array()) continue;
    for (const auto& addr : j["addresses"]) {
      if (!addr.is_string()) continue;
      auto [it, fresh] = map.try_emplace(addr.get<std::string>(), a.host);
      if (!fresh && it->second != a.host) ambiguous[it->first] = true;
    }
  }
  for (const auto& [addr, _] : ambiguous) map.erase(addr);
  correlator_.SetAddresses(std::move(map));
}

core::Status FleetCorrelation::ObserveLocked(const std::string& host,
                                             const std::vector<Finding>& findings) {
  RefreshAddressesLocked(false);
  const std::vector<FleetIncidentDraft> drafts = correlator_.Observe(host, findings);
  if (dropped_ != nullptr && correlator_.dropped() > dropped_seen_) {
    dropped_->Inc(correlator_.dropped() - dropped_seen_);
    dropped_seen_ = correlator_.dropped();
  }
  core::Status first_error;
  for (const FleetIncidentDraft& d : drafts) {
    FleetIncidentRow row;
    row.kind = std::string(FleetIncidentKindName(d.kind));
    row.key = d.key;
    row.hosts = d.hosts;
    row.first_ms = d.first_ms;
    row.last_ms = d.last_ms;
    row.summary = d.summary;
    auto raised = store_.RaiseFleetIncident(row, correlator_.options().window_ms, NowMs());
    core::Status st = raised.has_value() ? core::Status() : raised.error();
    if (st.ok() && (raised->created || raised->changed)) {
      const char* result = raised->created ? "opened" : "grown";
      st = audit_.Append(audit::RecordType::kDecision,
                         {{"action", std::string("fleet-incident-") + result},
                          {"fleet_incident", raised->row.id},
                          {"kind", raised->row.kind},
                          {"key", raised->row.key},
                          {"hosts", raised->row.hosts},
                          {"first_ms", raised->row.first_ms},
                          {"last_ms", raised->row.last_ms},
                          {"summary", raised->row.summary},
                          {"by", "hub"}});
      auto c = registry_.GetCounter("vigil_hub_fleet_incidents_total",
                                    "Fleet incidents opened or grown by the correlator",
                                    {{"kind", raised->row.kind}, {"result", result}});
      if (c.has_value()) (*c)->Inc();
    }
    if (!st.ok()) {
      if (errors_ != nullptr) errors_->Inc();
      if (first_error.ok()) first_error = st;
    }
  }
  return first_error;
}

core::Status FleetCorrelation::ObserveRowLocked(const StoredFinding& r) {
  auto f = ParseFindingJson(r.raw);
  if (!f.has_value()) return {};  // stored by an older hub in a form it no longer reads
  return ObserveLocked(r.host, {std::move(f).value()});
}

size_t FleetCorrelation::open_gaps() {
  std::lock_guard lock(mu_);
  return gaps_.size();
}

void FleetCorrelation::AdvanceLocked() {
  const int64_t now = NowMs();
  if (!seen_.empty()) {
    // Ids below the highest read that were not read: committed later, or never (rolled back).
    // At most kMaxGaps of them are waited for (a sequence that jumped far is not a gap).
    const int64_t top = *seen_.rbegin();
    if (top - cursor_ > kMaxGaps) {
      cursor_ = top - kMaxGaps;
      seen_.erase(seen_.begin(), seen_.upper_bound(cursor_));
      gaps_.erase(gaps_.begin(), gaps_.upper_bound(cursor_));
    }
    for (int64_t id = cursor_ + 1; id < top; ++id) {
      if (seen_.count(id) == 0) gaps_.try_emplace(id, now);
    }
  }
  while (true) {
    const int64_t next = cursor_ + 1;
    if (auto s = seen_.find(next); s != seen_.end()) {
      seen_.erase(s);
    } else if (auto g = gaps_.find(next); g != gaps_.end() && now - g->second >= kGapWaitMs) {
      gaps_.erase(g);  // given up on: a rolled-back transaction's id
    } else {
      break;
    }
    cursor_ = next;
  }
}

core::Status FleetCorrelation::Sync() {
  std::lock_guard lock(mu_);
  constexpr int64_t kPage = 5000;
  core::Status first_error;
  // From the cursor when gaps are open (at most once a second: they are rare and short), else
  // from the highest id read.
  const int64_t now = NowMs();
  int64_t after = seen_.empty() ? cursor_ : *seen_.rbegin();
  if (!gaps_.empty() && now - gaps_checked_ms_ >= 1000) {
    gaps_checked_ms_ = now;
    after = cursor_;
  }
  for (int page = 0; page < 100; ++page) {
    VIGIL_ASSIGN_OR_RETURN(std::vector<StoredFinding> rows, store_.FindingsAfter(after, kPage));
    for (const StoredFinding& r : rows) {
      after = r.id;
      if (r.id <= cursor_ || !seen_.insert(r.id).second) continue;
      gaps_.erase(r.id);
      core::Status st = ObserveRowLocked(r);
      if (!st.ok() && first_error.ok()) first_error = st;
    }
    if (static_cast<int64_t>(rows.size()) < kPage) break;
  }
  AdvanceLocked();
  return first_error;
}

core::Status FleetCorrelation::Rebuild() {
  std::lock_guard lock(mu_);
  RefreshAddressesLocked(true);
  const int64_t since = NowMs() - 2 * correlator_.options().window_ms;
  VIGIL_ASSIGN_OR_RETURN(std::vector<StoredFinding> rows, store_.RecentFindings(since, 100'000));
  if (rows.empty()) {
    // Nothing recent: start after the newest finding stored (older ones are out of every window).
    VIGIL_ASSIGN_OR_RETURN(rows, store_.RecentFindings(std::numeric_limits<int64_t>::min(), 1));
    cursor_ = rows.empty() ? 0 : rows[0].id;
    seen_.clear();
    gaps_.clear();
    return {};
  }
  core::Status first_error;
  int64_t top = 0;
  for (const StoredFinding& r : rows) {
    top = std::max(top, r.id);
    core::Status st = ObserveRowLocked(r);
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  // Ids below the newest read are done: read now, or older than every window.
  cursor_ = top;
  seen_.clear();
  gaps_.clear();
  return first_error;
}

void CorrelatingStore::Feed(const std::vector<IngestResult>& results) {
  bool any = false;
  for (const IngestResult& r : results) any = any || (!r.duplicate && r.findings != 0);
  if (!any) return;
  if (correlation_ != nullptr) {
    if (core::Status st = correlation_->Sync(); !st.ok()) {
      spdlog::warn("hub: correlator: {} (the findings are stored; the next read retries)",
                   st.message());
    }
  }
  if (after_ingest_) after_ingest_(results);
}

core::Result<IngestResult> CorrelatingStore::Ingest(const IngestMessage& m, int64_t now_ms) {
  auto res = inner_.Ingest(m, now_ms);
  if (res.has_value()) Feed({*res});
  return res;
}

core::Result<std::vector<IngestResult>> CorrelatingStore::IngestBatch(
    const std::vector<IngestMessage>& ms, int64_t now_ms) {
  auto res = inner_.IngestBatch(ms, now_ms);
  if (res.has_value()) Feed(*res);
  return res;
}

}  // namespace vigil::hub
