#include "agent/hub_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "hub/requests.h"
#include "model/model_file.h"

namespace vigil::agent {
namespace {

// A spooled message is "<findings>\n<body>": the count is kept for the counters.
bool ParseSpooledMessage(std::string_view record, size_t* findings, std::string_view* body) {
  const size_t nl = record.find('\n');
  if (nl == std::string_view::npos || nl == 0) return false;
  auto [end, ec] = std::from_chars(record.data(), record.data() + nl, *findings);
  if (ec != std::errc() || end != record.data() + nl) return false;
  *body = record.substr(nl + 1);
  return !body->empty() && body->front() == '{';
}

}  // namespace

HubSink::HubSink(HubSinkOptions options) : options_(std::move(options)) {}

core::Status HubSink::InitCounters(core::Registry& registry) {
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     core::Counter** out) -> core::Status {
    auto c = registry.GetCounter(name, help, labels);
    if (!c.has_value()) return c.error();
    *out = *c;
    return core::Status::Ok();
  };
  const char* kMessages = "Messages posted to the hub, by the hub's answer";
  const char* kFindings = "Findings of the hub sink, by what became of them";
  const char* kSkipped = "Lines the hub sink did not send, by cause";
  VIGIL_RETURN_IF_ERROR(
      counter("vigil_hub_sink_messages_total", kMessages, {{"result", "sent"}}, &sent_));
  VIGIL_RETURN_IF_ERROR(
      counter("vigil_hub_sink_messages_total", kMessages, {{"result", "duplicate"}}, &duplicate_));
  VIGIL_RETURN_IF_ERROR(
      counter("vigil_hub_sink_messages_total", kMessages, {{"result", "failed"}}, &failed_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_hub_sink_findings_total", kFindings, {{"result", "spooled"}},
                                &findings_spooled_));
  VIGIL_RETURN_IF_ERROR(
      counter("vigil_hub_sink_findings_total", kFindings, {{"result", "sent"}}, &findings_sent_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_hub_sink_findings_total", kFindings, {{"result", "failed"}},
                                &findings_failed_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_hub_sink_retries_total",
                                "Posts to the hub that failed and are retried", {}, &retries_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_hub_sink_lines_skipped_total", kSkipped,
                                {{"cause", "not-a-finding"}}, &skipped_not_finding_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_hub_sink_lines_skipped_total", kSkipped,
                                {{"cause", "not-anomalous"}}, &skipped_not_anomalous_));
  auto g = registry.GetGauge("vigil_hub_sink_spooled_messages",
                             "Messages spooled for the hub and not yet delivered");
  if (!g.has_value()) return g.error();
  pending_ = *g;
  return core::Status::Ok();
}

core::Result<std::unique_ptr<HubSink>> HubSink::Open(HubSinkOptions options,
                                                     core::Registry& registry,
                                                     pipeline::RecoveryReport* report) {
  if (options.batch_findings < 1 || options.batch_findings > hub::kMaxFindingsPerMessage) {
    return core::InvalidArgument("hub sink: batch_findings must be 1..10000");
  }
  if (options.batch_bytes < 1024 || options.batch_bytes > (size_t{6} << 20)) {
    return core::InvalidArgument("hub sink: batch_bytes must be 1 KiB .. 6 MiB");
  }
  if (options.batch_delay.count() < 1 || options.retry_initial.count() < 1 ||
      options.retry_max < options.retry_initial) {
    return core::InvalidArgument(
        "hub sink: batch_delay and retry_initial must be >= 1 ms and retry_max >= retry_initial");
  }
  if (options.spool_dir.empty()) return core::InvalidArgument("hub sink: no spool directory");
  std::unique_ptr<HubSink> sink(new HubSink(std::move(options)));
  const HubSinkOptions& o = sink->options_;
  VIGIL_ASSIGN_OR_RETURN(sink->client_, HubClient::Create(o.link));
  VIGIL_RETURN_IF_ERROR(sink->InitCounters(registry));
  sink->body_prefix_ =
      R"({"schema_version":"vigil.hub/v1","host":")" + o.link.host + R"(","message_id":")";
  HubSink* self = sink.get();
  std::lock_guard<std::mutex> lock(sink->mu_);
  auto replay = [self](uint64_t seq, std::string_view record) -> core::Status {
    size_t findings = 0;
    std::string_view body;
    if (!ParseSpooledMessage(record, &findings, &body)) {
      spdlog::error("hub sink: spool {}: record {} is not a hub message; skipped",
                    self->options_.spool_dir, seq);
      return core::Status::Ok();
    }
    self->QueueLocked(seq, findings, std::string(body));
    return core::Status::Ok();
  };
  auto spool = pipeline::Spool::Open(o.spool_dir, o.spool, replay, report);
  if (!spool.has_value()) return spool.error().WithContext("hub sink spool " + o.spool_dir);
  sink->spool_ = std::move(spool).value();
  sink->pending_->Set(
      static_cast<double>(sink->spool_->next_seq() - 1 - sink->spool_->acked_seq()));
  sink->sender_ = std::thread([self] { self->Sender(); });
  return sink;
}

HubSink::~HubSink() { Close(std::chrono::milliseconds(0)); }

core::Status HubSink::Write(std::string_view line) {
  if (std::memchr(line.data(), '\n', line.size()) != nullptr) {
    return core::InvalidArgument("sink 'hub': line contains a newline");
  }
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  const auto cls = j.is_object() ? j.find("class_uid") : j.end();
  if (!j.is_object() || cls == j.end() || !cls->is_number_integer() || *cls != 2004) {
    skipped_not_finding_->Inc();
    return core::Status::Ok();
  }
  if (options_.anomalous_only) {
    const auto v = j.find("vigil");
    if (v != j.end() && v->is_object() && !v->contains("rule") && v->contains("anomalous") &&
        (*v)["anomalous"].is_boolean() && !(*v)["anomalous"].get<bool>()) {
      skipped_not_anomalous_->Inc();
      return core::Status::Ok();
    }
  }
  if (auto f = hub::ParseFindingJson(line); !f.has_value()) {
    return f.error().WithContext("sink 'hub': finding refused");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return core::FailedPrecondition("sink 'hub': closed");
  if (open_findings_ > 0 && (open_findings_ >= options_.batch_findings ||
                             open_items_.size() + line.size() + 1 > options_.batch_bytes)) {
    VIGIL_RETURN_IF_ERROR(SealLocked());
  }
  if (open_findings_ == 0) {
    open_since_ = std::chrono::steady_clock::now();
    work_cv_.notify_all();  // the sender times the new message's delay
  } else {
    open_items_.push_back(',');
  }
  open_items_.append(line);
  ++open_findings_;
  if (open_findings_ >= options_.batch_findings) {
    // Sealed now when it can be; else the next Write or Flush retries and reports the error.
    if (core::Status st = SealLocked(); !st.ok()) {
      spdlog::warn("hub sink: {}", st.message());
    }
  }
  return core::Status::Ok();
}

core::Status HubSink::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_)
    return open_findings_ == 0 ? core::Status::Ok()
                               : core::FailedPrecondition("sink 'hub': closed");
  return SealLocked();
}

pipeline::SinkStats HubSink::Stats() const {
  pipeline::SinkStats s;
  s.lines_written = findings_spooled_->Value();
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  return s;
}

HubSinkCounts HubSink::Counts() const {
  HubSinkCounts c;
  c.messages_sent = sent_->Value();
  c.messages_duplicate = duplicate_->Value();
  c.messages_failed = failed_->Value();
  c.findings_spooled = findings_spooled_->Value();
  c.findings_sent = findings_sent_->Value();
  c.findings_failed = findings_failed_->Value();
  c.retries = retries_->Value();
  c.skipped_not_finding = skipped_not_finding_->Value();
  c.skipped_not_anomalous = skipped_not_anomalous_->Value();
  std::lock_guard<std::mutex> lock(mu_);
  if (spool_) c.pending_messages = spool_->next_seq() - 1 - spool_->acked_seq();
  return c;
}

core::Status HubSink::SealLocked() {
  if (open_findings_ == 0) return core::Status::Ok();
  if (!spool_) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return core::Unavailable("sink 'hub': the spool " + options_.spool_dir +
                             " could not be reopened");
  }
  // The id is the digest of the host and the findings: the same message always has the same id.
  const std::string id =
      "sha256:" + model::Sha256Hex(options_.link.host + "\n" + open_items_).substr(0, 32);
  std::string body;
  body.reserve(body_prefix_.size() + id.size() + open_items_.size() + 20);
  body.append(body_prefix_).append(id).append(R"(","findings":[)").append(open_items_).append("]}");
  const std::string record = std::to_string(open_findings_) + "\n" + body;
  auto seq = spool_->Append(record);
  if (!seq.has_value()) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return seq.error().WithContext("sink 'hub'");
  }
  findings_spooled_->Inc(open_findings_);
  QueueLocked(*seq, open_findings_, std::move(body));
  open_items_.clear();
  open_findings_ = 0;
  pending_->Set(static_cast<double>(spool_->next_seq() - 1 - spool_->acked_seq()));
  work_cv_.notify_all();
  return core::Status::Ok();
}

void HubSink::QueueLocked(uint64_t seq, size_t findings, std::string body) {
  if (disk_only_from_ == 0 &&
      (queue_.empty() || queue_bytes_ + body.size() <= options_.memory_bytes)) {
    queue_bytes_ += body.size();
    queue_.push_back(Message{seq, findings, std::move(body)});
  } else if (disk_only_from_ == 0) {
    disk_only_from_ = seq;
  }
}

core::Status HubSink::ReloadLocked() {
  const uint64_t from = disk_only_from_;
  disk_only_from_ = 0;
  spool_.reset();  // releases the directory; Open() reads back what is not acknowledged
  auto replay = [this, from](uint64_t seq, std::string_view record) -> core::Status {
    size_t findings = 0;
    std::string_view body;
    if (seq >= from && ParseSpooledMessage(record, &findings, &body)) {
      QueueLocked(seq, findings, std::string(body));
    }
    return core::Status::Ok();
  };
  auto spool = pipeline::Spool::Open(options_.spool_dir, options_.spool, replay, nullptr);
  if (!spool.has_value()) {
    disk_only_from_ = from;
    return spool.error().WithContext("hub sink: reopening spool " + options_.spool_dir);
  }
  spool_ = std::move(spool).value();
  return core::Status::Ok();
}

bool HubSink::Deliver(const Message& m) {
  static constexpr const char* kPath = "/v1/ingest";
  auto reply = client_->Post(kPath, m.body);
  if (reply.has_value() && reply->status == 200) {
    const bool duplicate = reply->body.is_object() && reply->body.contains("duplicate") &&
                           reply->body["duplicate"].is_boolean() &&
                           reply->body["duplicate"].get<bool>();
    (duplicate ? duplicate_ : sent_)->Inc();
    findings_sent_->Inc(m.findings);
    return true;
  }
  if (reply.has_value() && (reply->status == 400 || reply->status == 413)) {
    spdlog::error("hub sink: {} refused message {} ({} findings) for good: HTTP {}: {}; dropped",
                  options_.link.url, m.seq, m.findings, reply->status, reply->error);
    failed_->Inc();
    findings_failed_->Inc(m.findings);
    return true;
  }
  return false;
}

void HubSink::Sender() {
  std::unique_lock<std::mutex> lock(mu_);
  auto backoff = options_.retry_initial;
  bool failing = false;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (open_findings_ > 0 && now - open_since_ >= options_.batch_delay) {
      if (core::Status st = SealLocked(); !st.ok()) spdlog::warn("hub sink: {}", st.message());
    }
    if (stop_) break;
    if (queue_.empty() && disk_only_from_ != 0) {
      if (core::Status st = ReloadLocked(); !st.ok()) {
        spdlog::error("{}", st.message());
        work_cv_.wait_for(lock, options_.retry_max, [&] { return stop_; });
      }
      continue;
    }
    if (queue_.empty()) {
      idle_cv_.notify_all();
      if (open_findings_ > 0) {
        work_cv_.wait_until(lock, open_since_ + options_.batch_delay,
                            [&] { return stop_ || !queue_.empty(); });
      } else {
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty() || open_findings_ > 0; });
      }
      continue;
    }
    // Only this thread pops, and deque::push_back keeps references to elements valid.
    const Message& m = queue_.front();
    lock.unlock();
    const bool settled = Deliver(m);
    lock.lock();
    if (settled) {
      if (failing) spdlog::info("hub sink: {} takes messages again", options_.link.url);
      failing = false;
      backoff = options_.retry_initial;
      if (spool_) {
        if (core::Status st = spool_->Ack(m.seq); !st.ok()) {
          spdlog::warn("hub sink: {} (the message may be sent again; the hub keeps it once)",
                       st.message());
        }
        pending_->Set(static_cast<double>(spool_->next_seq() - 1 - spool_->acked_seq()));
      }
      queue_bytes_ -= m.body.size();
      queue_.pop_front();
      if (queue_.empty()) idle_cv_.notify_all();
      continue;
    }
    retries_->Inc();
    if (!failing) {
      spdlog::warn("hub sink: {} does not take messages; they are spooled in {} and retried",
                   options_.link.url, options_.spool_dir);
    }
    failing = true;
    work_cv_.wait_for(lock, backoff, [&] { return stop_; });
    backoff = std::min(backoff * 2, options_.retry_max);
  }
  idle_cv_.notify_all();
}

uint64_t HubSink::Close(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return left_after_close_;
  if (core::Status st = SealLocked(); !st.ok()) spdlog::error("hub sink: {}", st.message());
  work_cv_.notify_all();
  idle_cv_.wait_until(lock, std::chrono::steady_clock::now() + limit, [&] {
    return queue_.empty() && disk_only_from_ == 0 && open_findings_ == 0;
  });
  stop_ = true;
  work_cv_.notify_all();
  lock.unlock();
  if (sender_.joinable()) sender_.join();
  lock.lock();
  closed_ = true;
  left_after_close_ = spool_ ? spool_->next_seq() - 1 - spool_->acked_seq() : queue_.size();
  return left_after_close_;
}

}  // namespace vigil::agent
