#pragma once

// The pipeline's NATS JetStream adapter (libnats, the NATS C client; docs/hub.md "NATS
// JetStream"): one connection to a NATS server with its JetStream context, the Vigil stream
// (created or checked), publishing with the server's acknowledgement and a message id, and a
// durable pull consumer whose messages are acknowledged one by one. Nothing else in Vigil talks
// to libnats; the agent's nats sink publishes through it and the hub consumes through it.
//
// Subjects: findings of host H go to "<prefix>.<H'>.findings", where H' is H with every '.'
// written as '_' (host ids are [A-Za-z0-9._:-], so the mapping is one to one and H' is a single
// subject token: "vigil.*.findings" matches every host and a server permission
// "vigil.web-1.>" names exactly one host). The stream takes "<prefix>.>".
//
// Failures are Status values, never exceptions; a connection that failed (the server went
// away: Vigil does not let libnats reconnect behind its back) is reported by connected() and
// is to be replaced by a new Connect().
//
// Thread-safety: a JetStreamConnection and its consumer belong to one thread at a time.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct __natsConnection;
struct __natsOptions;
struct __jsCtx;
struct __natsSubscription;
struct __natsMsg;

namespace vigil::pipeline {

inline constexpr std::string_view kDefaultStream = "VIGIL";
inline constexpr std::string_view kDefaultSubjectPrefix = "vigil";

struct JetStreamOptions {
  std::string url;         // nats://HOST:PORT (or tls://HOST:PORT)
  std::string token_file;  // first line: the server's authorization token ("" : none)
  std::string creds_file;  // a NATS user credentials file (JWT and NKey seed; "" : none)
  std::string stream{kDefaultStream};
  std::string subject_prefix{kDefaultSubjectPrefix};
  std::string name;  // the connection's name, shown by the server's monitoring
  std::chrono::milliseconds timeout{5000};  // connecting, and each JetStream request or ack
};

// kInvalidArgument naming the field: a URL, stream name or subject prefix that core::IsNatsUrl,
// IsNatsName or IsNatsSubjectPrefix refuses, both a token file and a creds file, a timeout
// outside 1 ms .. 10 min.
core::Status ValidateJetStreamOptions(const JetStreamOptions& options);

// "<prefix>.<host, '.' as '_'>.<kind>", and back (nullopt when `subject` is not of that form).
// Kinds: "findings" (the nats sink's), "checkpoints" (audit checkpoints, hub/checkpoints.h).
std::string HostSubject(std::string_view prefix, std::string_view host, std::string_view kind);
std::optional<std::string> HostOfSubject(std::string_view prefix, std::string_view subject,
                                         std::string_view kind);
inline std::string FindingsSubject(std::string_view prefix, std::string_view host) {
  return HostSubject(prefix, host, "findings");
}
inline std::optional<std::string> HostOfFindingsSubject(std::string_view prefix,
                                                        std::string_view subject) {
  return HostOfSubject(prefix, subject, "findings");
}

struct PublishAck {
  uint64_t stream_seq = 0;
  bool duplicate = false;  // the stream had this message id within its duplicate window
};

// A message fetched from a consumer; acknowledged (Ack, Nak or Term) at most once.
class JetStreamMessage {
 public:
  explicit JetStreamMessage(__natsMsg* msg);
  ~JetStreamMessage();
  JetStreamMessage(JetStreamMessage&& other) noexcept;
  JetStreamMessage& operator=(JetStreamMessage&&) = delete;
  JetStreamMessage(const JetStreamMessage&) = delete;
  JetStreamMessage& operator=(const JetStreamMessage&) = delete;

  std::string_view subject() const;
  std::string_view data() const;
  uint64_t stream_seq() const { return stream_seq_; }
  uint64_t deliveries() const { return deliveries_; }  // 1 the first time

  // Ack waits for the server's confirmation. Nak asks for a redelivery after `delay`; Term tells
  // the server never to deliver the message again. kUnavailable when the server did not answer.
  core::Status Ack(std::chrono::milliseconds timeout);
  // Sends the acknowledgement without waiting for the server's answer (the server handles a
  // connection's acknowledgements in order: a later Ack's answer confirms this one too).
  core::Status AckNoWait();
  core::Status Nak(std::chrono::milliseconds delay);
  core::Status Term();

 private:
  __natsMsg* msg_;
  uint64_t stream_seq_ = 0;
  uint64_t deliveries_ = 0;
};

struct ConsumerOptions {
  std::string durable = "vigil-hub";          // shared by every process that consumes together
  std::chrono::milliseconds ack_wait{30000};  // unacknowledged this long: delivered again
  int64_t max_ack_pending = 1000;
  // The subjects' last token the consumer takes ("<prefix>.*.<kind>"). nats-server 2.9 allows one
  // filter per consumer, so each kind has its own durable.
  std::string kind = "findings";
};

// A durable consumer's state, as the server reports it.
struct ConsumerState {
  uint64_t pending = 0;      // messages of the stream not yet delivered to anyone
  uint64_t ack_pending = 0;  // delivered, neither acknowledged nor terminated yet
  uint64_t redelivered = 0;  // delivered more than once and still unacknowledged
};

class JetStreamConnection {
 public:
  // Connects (fails with kUnavailable naming the URL when the server cannot be reached or
  // refuses the credentials; a token or creds file that cannot be read: its own error).
  static core::Result<std::unique_ptr<JetStreamConnection>> Connect(JetStreamOptions options);
  ~JetStreamConnection();
  JetStreamConnection(const JetStreamConnection&) = delete;
  JetStreamConnection& operator=(const JetStreamConnection&) = delete;

  // Creates the stream (subjects "<prefix>.>", file storage, limits retention, a duplicate
  // window of 2 minutes) or checks the existing one: kFailedPrecondition when its subjects do
  // not include "<prefix>.>" or ">"; kUnavailable when JetStream does not answer (not enabled
  // on the server: `nats-server -js`).
  core::Status EnsureStream();

  // Publishes `data` to `subject` with the header Nats-Msg-Id: `msg_id` and waits for the
  // stream's acknowledgement. kUnavailable when none came (server down, timeout, no stream).
  core::Result<PublishAck> Publish(const std::string& subject, std::string_view data,
                                   const std::string& msg_id);

  // Creates the durable pull consumer (explicit acknowledgement, from the stream's start, filter
  // "<prefix>.*.<options.kind>") unless it exists, and binds to it. Every process binding the
  // same durable shares its messages: each is handed to one of them at a time.
  core::Status BindConsumer(const ConsumerOptions& options);
  // The state of the durable consumer `durable` of the stream (kNotFound when it does not
  // exist, kUnavailable when the server did not answer).
  core::Result<ConsumerState> Consumer(const std::string& durable);
  // Up to `batch` messages, waiting up to `wait` for the first; empty when none came.
  // kFailedPrecondition before BindConsumer; kUnavailable when the connection failed.
  core::Result<std::vector<JetStreamMessage>> Fetch(int batch, std::chrono::milliseconds wait);

  bool connected() const;
  // The largest message body the server takes (its max_payload; 0 when not connected).
  uint64_t max_payload() const;
  const JetStreamOptions& options() const { return options_; }

 private:
  explicit JetStreamConnection(JetStreamOptions options) : options_(std::move(options)) {}

  const JetStreamOptions options_;
  __natsOptions* opts_ = nullptr;
  __natsConnection* nc_ = nullptr;
  __jsCtx* js_ = nullptr;
  __natsSubscription* sub_ = nullptr;
};

}  // namespace vigil::pipeline
