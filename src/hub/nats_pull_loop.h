#pragma once

// The thread shared by the hub's NATS JetStream consumers (hub/nats_consumer.h for findings,
// hub/nats_streams.h for audit checkpoints): it connects, makes sure of the stream, binds the
// durable pull consumer, then fetches batches and hands each to its owner until Stop(). A
// failed connection is tried again with backoff (retry_initial doubling up to retry_max); a
// failed fetch drops the connection and makes a new one. What a message means, and its
// acknowledgement, is the owner's.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"
#include "pipeline/jetstream.h"

namespace vigil::hub {

struct NatsPullOptions {
  pipeline::JetStreamOptions nats;
  pipeline::ConsumerOptions consumer;
  int batch = 64;                                // messages per fetch, 1..1000
  std::chrono::milliseconds fetch_wait{500};     // also how soon Stop() is noticed
  std::chrono::milliseconds retry_initial{200};  // reconnecting: doubling up to retry_max
  std::chrono::milliseconds retry_max{5000};
};

// What a consumer counts: its messages by outcome and its failed NATS operations.
struct NatsPullCounts {
  uint64_t stored = 0, duplicate = 0, malformed = 0, retried = 0;
  uint64_t connect_errors = 0, fetch_errors = 0, ack_errors = 0;
};

// The counters behind NatsPullCounts, registered as `<prefix>_messages_total{result}` and
// `<prefix>_errors_total{op}`. A counter that could not be registered leaves its pointer null and
// the first error in `status` (the owner's Start() refuses to run with it).
struct NatsPullCounters {
  NatsPullCounters(core::Registry& registry, const std::string& prefix, const char* messages_help,
                   const char* errors_help);
  NatsPullCounts Read() const;

  core::Counter* stored = nullptr;
  core::Counter* duplicate = nullptr;
  core::Counter* malformed = nullptr;
  core::Counter* retried = nullptr;
  core::Counter* connect_errors = nullptr;
  core::Counter* fetch_errors = nullptr;
  core::Counter* ack_errors = nullptr;
  core::Status status;
};

// What the loop needs from its owner.
struct NatsPullHooks {
  std::string name;        // for errors: "nats consumer", "nats checkpoint consumer"
  std::string log_prefix;  // for log lines: "hub: nats", "hub: nats checkpoints"
  std::string kind;        // the subjects' last token, for the log: "findings", "checkpoints"
  core::Counter* connect_errors = nullptr;  // must outlive the loop
  core::Counter* fetch_errors = nullptr;
  std::function<void(bool connected)> on_connected;  // may be empty
  // One fetched batch, on the loop's thread. It may move messages out of the batch and settle
  // them later on another thread, if `drain` waits for that.
  std::function<void(std::vector<pipeline::JetStreamMessage>&)> handle;
  // On the loop's thread before it drops a connection (after a failed fetch, and when it ends):
  // returns once every message `handle` was given has been settled (acknowledged, negatively
  // acknowledged or terminated), as a message outliving its connection can no longer be. May
  // be empty (handle settles each batch before returning).
  std::function<void()> drain;
};

class NatsPullLoop {
 public:
  NatsPullLoop() = default;
  ~NatsPullLoop();  // Stop()
  NatsPullLoop(const NatsPullLoop&) = delete;
  NatsPullLoop& operator=(const NatsPullLoop&) = delete;

  // Checks the options (kInvalidArgument naming the field, prefixed by hooks.name) and starts
  // the thread; does not wait for the server. kFailedPrecondition when already started.
  core::Status Start(const NatsPullOptions& options, NatsPullHooks hooks);
  void Stop();  // idempotent; joins within about fetch_wait plus one batch

  bool connected() const { return connected_.load(); }

 private:
  void Run();
  bool Pause(std::chrono::milliseconds d);  // false when stopping
  void SetConnected(bool c);

  NatsPullOptions options_;
  NatsPullHooks hooks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace vigil::hub
