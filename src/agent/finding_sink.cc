#include "agent/finding_sink.h"

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

// The "message_id" of a body the sink built (ids are "sha256:" and hex: never escaped).
std::string MessageIdOf(std::string_view body) {
  constexpr std::string_view kKey = R"("message_id":")";
  const size_t at = body.find(kKey);
  if (at == std::string_view::npos) return {};
  const size_t from = at + kKey.size();
  const size_t end = body.find('"', from);
  return end == std::string_view::npos ? std::string() : std::string(body.substr(from, end - from));
}

}  // namespace

FindingSink::FindingSink(FindingSinkOptions options, std::unique_ptr<FindingTransport> transport)
    : options_(std::move(options)),
      name_("sink '" + options_.kind + "'"),
      transport_(std::move(transport)) {}

core::Status FindingSink::InitCounters(core::Registry& registry) {
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     core::Counter** out) -> core::Status {
    auto c = registry.GetCounter(name, help, labels);
    if (!c.has_value()) return c.error();
    *out = *c;
    return core::Status::Ok();
  };
  const std::string k = "vigil_" + options_.kind + "_sink_";
  const std::string messages = k + "messages_total", findings = k + "findings_total",
                    skipped = k + "lines_skipped_total";
  const std::string kMessages = "Messages of the " + options_.kind + " sink, by delivery outcome";
  const std::string kFindings =
      "Findings of the " + options_.kind + " sink, by what became of them";
  const std::string kSkipped = "Lines the " + options_.kind + " sink did not send, by cause";
  VIGIL_RETURN_IF_ERROR(counter(messages.c_str(), kMessages.c_str(), {{"result", "sent"}}, &sent_));
  VIGIL_RETURN_IF_ERROR(
      counter(messages.c_str(), kMessages.c_str(), {{"result", "duplicate"}}, &duplicate_));
  VIGIL_RETURN_IF_ERROR(
      counter(messages.c_str(), kMessages.c_str(), {{"result", "failed"}}, &failed_));
  VIGIL_RETURN_IF_ERROR(
      counter(findings.c_str(), kFindings.c_str(), {{"result", "spooled"}}, &findings_spooled_));
  VIGIL_RETURN_IF_ERROR(
      counter(findings.c_str(), kFindings.c_str(), {{"result", "sent"}}, &findings_sent_));
  VIGIL_RETURN_IF_ERROR(
      counter(findings.c_str(), kFindings.c_str(), {{"result", "failed"}}, &findings_failed_));
  VIGIL_RETURN_IF_ERROR(counter((k + "retries_total").c_str(),
                                "Deliveries that failed and are retried", {}, &retries_));
  VIGIL_RETURN_IF_ERROR(counter(skipped.c_str(), kSkipped.c_str(), {{"cause", "not-a-finding"}},
                                &skipped_not_finding_));
  VIGIL_RETURN_IF_ERROR(counter(skipped.c_str(), kSkipped.c_str(), {{"cause", "not-anomalous"}},
                                &skipped_not_anomalous_));
  auto g = registry.GetGauge(k + "spooled_messages", "Messages spooled by the " + options_.kind +
                                                         " sink and not yet delivered");
  if (!g.has_value()) return g.error();
  pending_ = *g;
  return core::Status::Ok();
}

core::Result<std::unique_ptr<FindingSink>> FindingSink::Open(
    FindingSinkOptions options, std::unique_ptr<FindingTransport> transport,
    core::Registry& registry, pipeline::RecoveryReport* report) {
  const std::string name = options.kind + " sink";
  if (options.kind.empty() || transport == nullptr) {
    return core::InvalidArgument("finding sink: no kind or no transport");
  }
  if (options.batch_findings < 1 || options.batch_findings > hub::kMaxFindingsPerMessage) {
    return core::InvalidArgument(name + ": batch_findings must be 1..10000");
  }
  if (options.batch_bytes < 1024 || options.batch_bytes > (size_t{6} << 20)) {
    return core::InvalidArgument(name + ": batch_bytes must be 1 KiB .. 6 MiB");
  }
  if (options.batch_delay.count() < 1 || options.retry_initial.count() < 1 ||
      options.retry_max < options.retry_initial) {
    return core::InvalidArgument(
        name + ": batch_delay and retry_initial must be >= 1 ms and retry_max >= retry_initial");
  }
  if (!hub::ValidHostId(options.host)) {
    return core::InvalidArgument(name + ": host id '" + options.host +
                                 "' is not 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (options.spool_dir.empty()) return core::InvalidArgument(name + ": no spool directory");
  std::unique_ptr<FindingSink> sink(new FindingSink(std::move(options), std::move(transport)));
  const FindingSinkOptions& o = sink->options_;
  VIGIL_RETURN_IF_ERROR(sink->InitCounters(registry));
  sink->body_prefix_ =
      R"({"schema_version":"vigil.hub/v1","host":")" + o.host + R"(","message_id":")";
  FindingSink* self = sink.get();
  std::lock_guard<std::mutex> lock(sink->mu_);
  auto replay = [self](uint64_t seq, std::string_view record) -> core::Status {
    if (!self->QueueRecordLocked(seq, record)) {
      spdlog::error("{}: spool {}: record {} is not a message of findings; skipped", self->name_,
                    self->options_.spool_dir, seq);
    }
    return core::Status::Ok();
  };
  auto spool = pipeline::Spool::Open(o.spool_dir, o.spool, replay, report);
  if (!spool.has_value()) return spool.error().WithContext(name + " spool " + o.spool_dir);
  sink->spool_ = std::move(spool).value();
  sink->pending_->Set(
      static_cast<double>(sink->spool_->next_seq() - 1 - sink->spool_->acked_seq()));
  sink->sender_ = std::thread([self] { self->Sender(); });
  return sink;
}

FindingSink::~FindingSink() { Close(std::chrono::milliseconds(0)); }

core::Status FindingSink::Write(std::string_view line) {
  if (std::memchr(line.data(), '\n', line.size()) != nullptr) {
    return core::InvalidArgument(name_ + ": line contains a newline");
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
    return f.error().WithContext(name_ + ": finding refused");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return core::FailedPrecondition(name_ + ": closed");
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
      spdlog::warn("{}: {}", name_, st.message());
    }
  }
  return core::Status::Ok();
}

core::Status FindingSink::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_)
    return open_findings_ == 0 ? core::Status::Ok() : core::FailedPrecondition(name_ + ": closed");
  return SealLocked();
}

pipeline::SinkStats FindingSink::Stats() const {
  pipeline::SinkStats s;
  s.lines_written = findings_spooled_->Value();
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  return s;
}

FindingSinkCounts FindingSink::Counts() const {
  FindingSinkCounts c;
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

core::Status FindingSink::SealLocked() {
  if (open_findings_ == 0) return core::Status::Ok();
  if (!spool_) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return core::Unavailable(name_ + ": the spool " + options_.spool_dir +
                             " could not be reopened");
  }
  // The id is the digest of the host and the findings: the same message always has the same id.
  const std::string id =
      "sha256:" + model::Sha256Hex(options_.host + "\n" + open_items_).substr(0, 32);
  std::string body;
  body.reserve(body_prefix_.size() + id.size() + open_items_.size() + 20);
  body.append(body_prefix_).append(id).append(R"(","findings":[)").append(open_items_).append("]}");
  const std::string record = std::to_string(open_findings_) + "\n" + body;
  auto seq = spool_->Append(record);
  if (!seq.has_value()) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    return seq.error().WithContext(name_);
  }
  findings_spooled_->Inc(open_findings_);
  QueueLocked(*seq, open_findings_, std::move(body));  // the id is read back from the body
  open_items_.clear();
  open_findings_ = 0;
  pending_->Set(static_cast<double>(spool_->next_seq() - 1 - spool_->acked_seq()));
  work_cv_.notify_all();
  return core::Status::Ok();
}

void FindingSink::QueueLocked(uint64_t seq, size_t findings, std::string body) {
  if (disk_only_from_ == 0 &&
      (queue_.empty() || queue_bytes_ + body.size() <= options_.memory_bytes)) {
    queue_bytes_ += body.size();
    std::string id = MessageIdOf(body);
    queue_.push_back(Message{seq, findings, std::move(id), std::move(body)});
  } else if (disk_only_from_ == 0) {
    disk_only_from_ = seq;
  }
}

bool FindingSink::QueueRecordLocked(uint64_t seq, std::string_view record) {
  size_t findings = 0;
  std::string_view body;
  if (!ParseSpooledMessage(record, &findings, &body)) return false;
  QueueLocked(seq, findings, std::string(body));
  return true;
}

core::Status FindingSink::ReloadLocked() {
  const uint64_t from = disk_only_from_;
  disk_only_from_ = 0;
  spool_.reset();  // releases the directory; Open() reads back what is not acknowledged
  auto replay = [this, from](uint64_t seq, std::string_view record) -> core::Status {
    if (seq >= from) QueueRecordLocked(seq, record);
    return core::Status::Ok();
  };
  auto spool = pipeline::Spool::Open(options_.spool_dir, options_.spool, replay, nullptr);
  if (!spool.has_value()) {
    disk_only_from_ = from;
    return spool.error().WithContext(name_ + ": reopening spool " + options_.spool_dir);
  }
  spool_ = std::move(spool).value();
  return core::Status::Ok();
}

bool FindingSink::Deliver(const Message& m) {
  switch (transport_->Deliver(m)) {
    case DeliveryOutcome::kStored:
      sent_->Inc();
      findings_sent_->Inc(m.findings);
      return true;
    case DeliveryOutcome::kDuplicate:
      duplicate_->Inc();
      findings_sent_->Inc(m.findings);
      return true;
    case DeliveryOutcome::kRefused:  // the transport logged why
      failed_->Inc();
      findings_failed_->Inc(m.findings);
      return true;
    case DeliveryOutcome::kRetry:
      return false;
  }
  return true;
}

void FindingSink::Sender() {
  std::unique_lock<std::mutex> lock(mu_);
  auto backoff = options_.retry_initial;
  bool failing = false;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (open_findings_ > 0 && now - open_since_ >= options_.batch_delay) {
      if (core::Status st = SealLocked(); !st.ok()) spdlog::warn("{}: {}", name_, st.message());
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
      if (failing) spdlog::info("{}: {} takes messages again", name_, transport_->Endpoint());
      failing = false;
      backoff = options_.retry_initial;
      if (spool_) {
        if (core::Status st = spool_->Ack(m.seq); !st.ok()) {
          spdlog::warn("{}: {} (the message may be sent again; the hub keeps it once)", name_,
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
      spdlog::warn("{}: {} does not take messages; they are spooled in {} and retried", name_,
                   transport_->Endpoint(), options_.spool_dir);
    }
    failing = true;
    work_cv_.wait_for(lock, backoff, [&] { return stop_; });
    backoff = std::min(backoff * 2, options_.retry_max);
  }
  idle_cv_.notify_all();
}

uint64_t FindingSink::Close(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return left_after_close_;
  if (core::Status st = SealLocked(); !st.ok()) spdlog::error("{}: {}", name_, st.message());
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
