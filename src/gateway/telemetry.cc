#include "gateway/telemetry.h"

#include <mosquitto.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/files.h"

namespace vigil::gateway {
namespace {

constexpr int kLoopTimeoutMs = 100;  // how soon the client thread notices Stop

std::once_flag mosquitto_init;

// Counts that deserve a log line: 1, 2, 4, 8, ... (a flood of bad payloads logs a handful).
bool WorthLogging(uint64_t n) { return (n & (n - 1)) == 0; }

}  // namespace

Telemetry::Telemetry(const TelemetryConfig& config, int64_t max_age_ns, PlantState& plant,
                     const core::Clock& clock, SensorScorer* scorer, FindingFn on_finding)
    : config_(config),
      max_age_ns_(max_age_ns),
      plant_(plant),
      clock_(clock),
      scorer_(scorer),
      on_finding_(std::move(on_finding)) {
  if (scorer_ != nullptr) {
    const auto& names = scorer_->signals();
    for (size_t i = 0; i < names.size(); ++i) scored_index_[names[i]] = i;
    row_.assign(names.size(), 0.0);
    row_ns_.assign(names.size(), 0);
    row_fresh_.assign(names.size(), false);
    row_missing_ = names.size();
  }
}

Telemetry::~Telemetry() {
  Stop();
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

core::Status Telemetry::Authenticate() {
  if (!config_.username.empty()) {
    std::string password;
    if (!config_.password_file.empty()) {
      auto read = core::ReadTokenFile(config_.password_file, "the MQTT password");
      if (!read.has_value()) return read.error().WithContext("telemetry.password_file");
      password = std::move(*read);
      if (!config_.tls) {
        spdlog::warn("telemetry: the MQTT password goes to {} unencrypted (no telemetry.tls)",
                     config_.broker.ToString());
      }
    }
    const int rc = mosquitto_username_pw_set(mosq_, config_.username.c_str(),
                                             password.empty() ? nullptr : password.c_str());
    if (rc != MOSQ_ERR_SUCCESS) {
      return core::InvalidArgument(
          fmt::format("telemetry.username: libmosquitto refused it: {}", mosquitto_strerror(rc)));
    }
  }
  if (!config_.tls) return core::Status::Ok();
  const MqttTlsConfig& tls = *config_.tls;
  // Read first, so that a missing or unreadable file is named with the reason.
  constexpr uint64_t kMaxPemBytes = 1 << 20;
  for (const auto& [key, path] : {std::pair{"ca_file", &tls.ca_file},
                                  std::pair{"cert_file", &tls.cert_file},
                                  std::pair{"key_file", &tls.key_file}}) {
    if (path->empty()) continue;
    auto pem = core::ReadFile(*path, kMaxPemBytes);
    if (!pem.has_value()) return pem.error().WithContext(fmt::format("telemetry.tls.{}", key));
  }
  int rc = mosquitto_tls_set(mosq_, tls.ca_file.c_str(), nullptr,
                             tls.cert_file.empty() ? nullptr : tls.cert_file.c_str(),
                             tls.key_file.empty() ? nullptr : tls.key_file.c_str(), nullptr);
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_tls_opts_set(mosq_, /*SSL_VERIFY_PEER*/ 1, nullptr, nullptr);
  }
  if (rc != MOSQ_ERR_SUCCESS) {
    return core::InvalidArgument(
        fmt::format("telemetry.tls: libmosquitto refused the files: {}", mosquitto_strerror(rc)));
  }
  return core::Status::Ok();
}

core::Status Telemetry::Start() {
  std::call_once(mosquitto_init, [] { mosquitto_lib_init(); });
  if (mosq_ == nullptr) {
    mosq_ = mosquitto_new(config_.client_id.c_str(), /*clean_session=*/true, this);
    if (mosq_ == nullptr) {
      return core::Internal(fmt::format("telemetry: libmosquitto cannot make a client ({})",
                                        strerror(errno)));
    }
    if (core::Status st = Authenticate(); !st.ok()) {
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
      return st;
    }
    mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      static_cast<Telemetry*>(self)->OnConnect(rc);
    });
    mosquitto_disconnect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      static_cast<Telemetry*>(self)->OnDisconnect(rc);
    });
    mosquitto_message_callback_set(
        mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
          const std::string_view topic = m->topic != nullptr ? m->topic : "";
          const std::string_view payload(static_cast<const char*>(m->payload),
                                         m->payload != nullptr ? size_t(m->payloadlen) : 0);
          static_cast<Telemetry*>(self)->HandleMessage(topic, payload);
        });
  }
  {
    std::lock_guard lock(run_mu_);
    stop_ = false;
  }
  stopping_ = false;
  delay_ms_ = config_.reconnect_min_s * 1000;
  thread_ = std::thread([this] { Run(); });
  return core::Status::Ok();
}

void Telemetry::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(run_mu_);
    stop_ = true;
  }
  stopping_ = true;
  run_cv_.notify_all();
  thread_.join();
  stats_.connected = false;
}

void Telemetry::Run() {
  bool first = true;
  while (!stopping_) {
    const uint64_t connects_before = stats_.connects.load();
    int rc = first ? mosquitto_connect_async(mosq_, config_.broker.host.c_str(),
                                             config_.broker.port,
                                             static_cast<int>(config_.keepalive_s))
                   : mosquitto_reconnect_async(mosq_);
    first = false;
    const int connect_errno = errno;
    if (rc == MOSQ_ERR_SUCCESS) {
      // Runs the connection (CONNACK, subscriptions, messages, keep-alive) until it fails.
      while (!stopping_ && (rc = mosquitto_loop(mosq_, kLoopTimeoutMs, 1)) == MOSQ_ERR_SUCCESS) {
      }
      if (stopping_) break;
    }
    stats_.connected = false;
    if (stats_.connects.load() != connects_before) {
      stats_.disconnects.fetch_add(1);
      spdlog::warn("telemetry: lost the MQTT broker {} ({}), reconnecting in {} ms",
                   config_.broker.ToString(), mosquitto_strerror(rc), delay_ms_);
    } else {
      const uint64_t n = stats_.connect_failures.fetch_add(1) + 1;
      if (WorthLogging(n)) {
        spdlog::warn("telemetry: cannot reach the MQTT broker {} ({}; {} failures so far), "
                     "retrying in {} ms",
                     config_.broker.ToString(),
                     rc == MOSQ_ERR_ERRNO ? strerror(connect_errno) : mosquitto_strerror(rc), n,
                     delay_ms_);
      }
    }
    std::unique_lock lock(run_mu_);
    run_cv_.wait_for(lock, std::chrono::milliseconds(delay_ms_), [&] { return stop_; });
    delay_ms_ = std::min(delay_ms_ * 2, config_.reconnect_max_s * 1000);
  }
  mosquitto_disconnect(mosq_);
  // Lets the DISCONNECT packet go out; the socket is closed either way.
  (void)mosquitto_loop(mosq_, 0, 1);
}

void Telemetry::OnConnect(int rc) {
  if (rc != 0) {
    spdlog::warn("telemetry: the MQTT broker {} refused the connection: {}",
                 config_.broker.ToString(), mosquitto_connack_string(rc));
    return;  // the loop sees the connection close and counts a failure
  }
  stats_.connected = true;
  stats_.connects.fetch_add(1);
  delay_ms_ = config_.reconnect_min_s * 1000;
  spdlog::info("telemetry: connected to {}, subscribing to {} topics", config_.broker.ToString(),
               config_.topics.size());
  for (const TopicSchema& t : config_.topics) {
    const int sub = mosquitto_subscribe(mosq_, nullptr, t.topic.c_str(),
                                        static_cast<int>(config_.qos));
    if (sub != MOSQ_ERR_SUCCESS) {
      spdlog::warn("telemetry: cannot subscribe to {}: {}", t.topic, mosquitto_strerror(sub));
    }
  }
}

void Telemetry::OnDisconnect(int /*rc*/) { stats_.connected = false; }

const TopicSchema* Telemetry::Match(std::string_view topic) const {
  for (const TopicSchema& t : config_.topics) {
    if (t.topic == topic) return &t;
  }
  const std::string name(topic);
  for (const TopicSchema& t : config_.topics) {
    bool match = false;
    if (t.topic.find_first_of("+#") != std::string::npos &&
        mosquitto_topic_matches_sub(t.topic.c_str(), name.c_str(), &match) == MOSQ_ERR_SUCCESS &&
        match) {
      return &t;
    }
  }
  return nullptr;
}

void Telemetry::HandleMessage(std::string_view topic, std::string_view payload) {
  stats_.messages.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = clock_.MonotonicNanos();
  const TopicSchema* schema = Match(topic);
  PayloadCheck check;
  if (schema == nullptr) {
    check.error = PayloadError::kUnknownTopic;
    check.detail = "no schema for this topic";
  } else {
    check = ValidatePayload(*schema, payload);
  }
  std::lock_guard lock(handle_mu_);
  if (check.error != PayloadError::kNone) {
    const uint64_t n =
        stats_.rejected[static_cast<size_t>(check.error)].fetch_add(1, std::memory_order_relaxed) +
        1;
    std::string shown;
    for (char c : topic.substr(0, 128)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    last_error_ = fmt::format("{}: {}: {}", shown, PayloadErrorName(check.error), check.detail);
    if (WorthLogging(n)) {
      spdlog::warn("telemetry: payload refused ({} so far for this reason): {}", n, last_error_);
    }
    return;
  }
  plant_.SetAll(check.values, now);
  stats_.accepted.fetch_add(1, std::memory_order_relaxed);
  if (scorer_ != nullptr) FeedScorer(check.values, now);
}

void Telemetry::FeedScorer(const std::vector<std::pair<std::string, double>>& values,
                           int64_t now) {
  for (const auto& [name, value] : values) {
    auto it = scored_index_.find(name);
    if (it == scored_index_.end()) continue;
    const size_t i = it->second;
    row_[i] = value;
    row_ns_[i] = now;
    if (!row_fresh_[i]) {
      row_fresh_[i] = true;
      --row_missing_;
    }
  }
  if (row_missing_ > 0) return;
  std::fill(row_fresh_.begin(), row_fresh_.end(), false);
  row_missing_ = row_.size();
  const int64_t oldest = *std::min_element(row_ns_.begin(), row_ns_.end());
  if (now - oldest > max_age_ns_) {
    stats_.rows_stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  stats_.rows_scored.fetch_add(1, std::memory_order_relaxed);
  for (const SensorFinding& f : scorer_->Observe(row_)) {
    if (on_finding_) on_finding_(f);
  }
}

std::string Telemetry::last_error() const {
  std::lock_guard lock(handle_mu_);
  return last_error_;
}

}  // namespace vigil::gateway
