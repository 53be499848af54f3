#include "hub/nats_pull_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/config.h"

namespace vigil::hub {

NatsPullCounters::NatsPullCounters(core::Registry& registry, const std::string& prefix,
                                   const char* messages_help, const char* errors_help) {
  const std::string messages = prefix + "_messages_total";
  const std::string errors = prefix + "_errors_total";
  auto counter = [&](const std::string& name, const char* help, const core::Labels& labels,
                     core::Counter** out) {
    auto c = registry.GetCounter(name, help, labels);
    if (c.has_value()) {
      *out = *c;
    } else if (status.ok()) {
      status = c.error();
    }
  };
  counter(messages, messages_help, {{"result", "stored"}}, &stored);
  counter(messages, messages_help, {{"result", "duplicate"}}, &duplicate);
  counter(messages, messages_help, {{"result", "malformed"}}, &malformed);
  counter(messages, messages_help, {{"result", "retried"}}, &retried);
  counter(errors, errors_help, {{"op", "connect"}}, &connect_errors);
  counter(errors, errors_help, {{"op", "fetch"}}, &fetch_errors);
  counter(errors, errors_help, {{"op", "ack"}}, &ack_errors);
}

NatsPullCounts NatsPullCounters::Read() const {
  NatsPullCounts c;
  c.stored = stored->Value();
  c.duplicate = duplicate->Value();
  c.malformed = malformed->Value();
  c.retried = retried->Value();
  c.connect_errors = connect_errors->Value();
  c.fetch_errors = fetch_errors->Value();
  c.ack_errors = ack_errors->Value();
  return c;
}

NatsPullLoop::~NatsPullLoop() { Stop(); }

core::Status NatsPullLoop::Start(const NatsPullOptions& options, NatsPullHooks hooks) {
  VIGIL_RETURN_IF_ERROR(pipeline::ValidateJetStreamOptions(options.nats));
  if (!core::IsNatsName(options.consumer.durable)) {
    return core::InvalidArgument(hooks.name + ": expected 1..64 of [A-Za-z0-9_-], got '" +
                                 options.consumer.durable + "'");
  }
  if (options.batch < 1 || options.batch > 1000 || options.fetch_wait.count() < 1 ||
      options.retry_initial.count() < 1 || options.retry_max < options.retry_initial) {
    return core::InvalidArgument(hooks.name +
                                 ": batch must be 1..1000, fetch_wait and retry_initial >= 1 ms, "
                                 "retry_max >= retry_initial");
  }
  if (thread_.joinable()) return core::FailedPrecondition(hooks.name + ": already started");
  options_ = options;
  hooks_ = std::move(hooks);
  thread_ = std::thread([this] { Run(); });
  return core::Status::Ok();
}

void NatsPullLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool NatsPullLoop::Pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

void NatsPullLoop::SetConnected(bool c) {
  connected_.store(c);
  if (hooks_.on_connected) hooks_.on_connected(c);
}

void NatsPullLoop::Run() {
  const pipeline::JetStreamOptions& o = options_.nats;
  std::unique_ptr<pipeline::JetStreamConnection> conn;
  auto backoff = options_.retry_initial;
  std::string last_error;
  auto stopping = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  };
  while (!stopping()) {
    if (conn == nullptr || !conn->connected()) {
      if (conn != nullptr && hooks_.drain) hooks_.drain();
      conn.reset();
      SetConnected(false);
      auto c = pipeline::JetStreamConnection::Connect(o);
      core::Status st = c.has_value() ? (*c)->EnsureStream() : c.error();
      if (st.ok()) st = (*c)->BindConsumer(options_.consumer);
      if (!st.ok()) {
        hooks_.connect_errors->Inc();
        if (st.message() != last_error) {
          spdlog::warn("{}: {}; retrying", hooks_.log_prefix, st.message());
          last_error = st.message();
        }
        if (!Pause(backoff)) break;
        backoff = std::min(backoff * 2, options_.retry_max);
        continue;
      }
      conn = std::move(c).value();
      backoff = options_.retry_initial;
      last_error.clear();
      SetConnected(true);
      spdlog::info("hub: consuming NATS stream {} (subjects {}.*.{}) as durable {} at {}",
                   o.stream, o.subject_prefix, hooks_.kind, options_.consumer.durable, o.url);
    }
    auto batch = conn->Fetch(options_.batch, options_.fetch_wait);
    if (!batch.has_value()) {
      hooks_.fetch_errors->Inc();
      spdlog::warn("{}: {}; reconnecting", hooks_.log_prefix, batch.error().message());
      if (hooks_.drain) hooks_.drain();
      conn.reset();
      continue;
    }
    hooks_.handle(*batch);
  }
  if (hooks_.drain) hooks_.drain();
  SetConnected(false);
}

}  // namespace vigil::hub
