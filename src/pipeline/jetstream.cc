#include "pipeline/jetstream.h"

#include <nats/nats.h>

#include <algorithm>
#include <cstring>

#include "core/config.h"
#include "core/files.h"

namespace vigil::pipeline {
namespace {

constexpr int64_t kNanosPerMilli = 1'000'000;
constexpr int64_t kDuplicateWindowNs = int64_t{120'000} * kNanosPerMilli;
constexpr size_t kMaxCredsFileBytes = 64 * 1024;

// "what: <status text> (<libnats' last error>)".
core::Status NatsError(const std::string& what, natsStatus s, jsErrCode js_code = jsErrCode(0)) {
  std::string text = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && std::strstr(last, natsStatus_GetText(s)) == nullptr) {
    text += std::string(" (") + last + ")";
  }
  if (js_code != 0) text += " [JetStream error " + std::to_string(static_cast<int>(js_code)) + "]";
  return core::Unavailable(std::move(text));
}

}  // namespace

core::Status ValidateJetStreamOptions(const JetStreamOptions& o) {
  if (!core::IsNatsUrl(o.url)) {
    return core::InvalidArgument("nats url: expected nats://HOST:PORT or tls://HOST:PORT, got '" +
                                 o.url + "'");
  }
  if (!core::IsNatsName(o.stream)) {
    return core::InvalidArgument("nats stream: expected 1..64 of [A-Za-z0-9_-], got '" + o.stream +
                                 "'");
  }
  if (!core::IsNatsSubjectPrefix(o.subject_prefix)) {
    return core::InvalidArgument(
        "nats subject prefix: expected dot-separated tokens of [A-Za-z0-9_-] (no wildcards), got "
        "'" +
        o.subject_prefix + "'");
  }
  if (!o.token_file.empty() && !o.creds_file.empty()) {
    return core::InvalidArgument("nats: give a token file or a creds file, not both");
  }
  if (o.timeout.count() < 1 || o.timeout > std::chrono::minutes(10)) {
    return core::InvalidArgument("nats timeout: must be 1 ms .. 10 min");
  }
  return core::Status::Ok();
}

std::string HostSubject(std::string_view prefix, std::string_view host, std::string_view kind) {
  std::string s;
  s.reserve(prefix.size() + host.size() + kind.size() + 2);
  s.append(prefix).push_back('.');
  for (char c : host) s.push_back(c == '.' ? '_' : c);
  s.append(".").append(kind);
  return s;
}

std::optional<std::string> HostOfSubject(std::string_view prefix, std::string_view subject,
                                         std::string_view kind) {
  const size_t suffix = kind.size() + 1;  // ".<kind>"
  if (subject.size() <= prefix.size() + 1 + suffix || subject.rfind(prefix, 0) != 0 ||
      subject[prefix.size()] != '.' || subject[subject.size() - suffix] != '.' ||
      subject.substr(subject.size() - kind.size()) != kind) {
    return std::nullopt;
  }
  std::string host(subject.substr(prefix.size() + 1, subject.size() - prefix.size() - 1 - suffix));
  if (host.find('.') != std::string::npos) return std::nullopt;
  std::replace(host.begin(), host.end(), '_', '.');
  return host;
}

JetStreamMessage::JetStreamMessage(natsMsg* msg) : msg_(msg) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg_) == NATS_OK) {
    stream_seq_ = meta->Sequence.Stream;
    deliveries_ = meta->NumDelivered;
    jsMsgMetaData_Destroy(meta);
  }
}

JetStreamMessage::~JetStreamMessage() {
  if (msg_ != nullptr) natsMsg_Destroy(msg_);
}

JetStreamMessage::JetStreamMessage(JetStreamMessage&& other) noexcept
    : msg_(other.msg_), stream_seq_(other.stream_seq_), deliveries_(other.deliveries_) {
  other.msg_ = nullptr;
}

std::string_view JetStreamMessage::subject() const {
  const char* s = natsMsg_GetSubject(msg_);
  return s == nullptr ? std::string_view() : std::string_view(s);
}

std::string_view JetStreamMessage::data() const {
  const char* d = natsMsg_GetData(msg_);
  const int n = natsMsg_GetDataLength(msg_);
  return d == nullptr || n <= 0 ? std::string_view() : std::string_view(d, static_cast<size_t>(n));
}

core::Status JetStreamMessage::Ack(std::chrono::milliseconds timeout) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = timeout.count();
  jsErrCode code = jsErrCode(0);
  const natsStatus s = natsMsg_AckSync(msg_, &o, &code);
  if (s != NATS_OK)
    return NatsError("ack of stream message " + std::to_string(stream_seq_), s, code);
  return core::Status::Ok();
}

core::Status JetStreamMessage::AckNoWait() {
  const natsStatus s = natsMsg_Ack(msg_, nullptr);
  if (s != NATS_OK) return NatsError("ack of stream message " + std::to_string(stream_seq_), s);
  return core::Status::Ok();
}

core::Status JetStreamMessage::Nak(std::chrono::milliseconds delay) {
  const natsStatus s = natsMsg_NakWithDelay(msg_, delay.count(), nullptr);
  if (s != NATS_OK) return NatsError("nak of stream message " + std::to_string(stream_seq_), s);
  return core::Status::Ok();
}

core::Status JetStreamMessage::Term() {
  const natsStatus s = natsMsg_Term(msg_, nullptr);
  if (s != NATS_OK) return NatsError("term of stream message " + std::to_string(stream_seq_), s);
  return core::Status::Ok();
}

core::Result<std::unique_ptr<JetStreamConnection>> JetStreamConnection::Connect(
    JetStreamOptions options) {
  VIGIL_RETURN_IF_ERROR(ValidateJetStreamOptions(options));
  std::unique_ptr<JetStreamConnection> c(new JetStreamConnection(std::move(options)));
  const JetStreamOptions& o = c->options_;
  natsStatus s = natsOptions_Create(&c->opts_);
  if (s == NATS_OK) s = natsOptions_SetURL(c->opts_, o.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(c->opts_, o.timeout.count());
  // A failed connection is replaced by the caller, who knows what to retry and when.
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(c->opts_, false);
  if (s == NATS_OK && !o.name.empty()) s = natsOptions_SetName(c->opts_, o.name.c_str());
  if (s == NATS_OK && !o.token_file.empty()) {
    VIGIL_ASSIGN_OR_RETURN(const std::string token,
                           core::ReadTokenFile(o.token_file, "NATS token"));
    s = natsOptions_SetToken(c->opts_, token.c_str());
  }
  if (s == NATS_OK && !o.creds_file.empty()) {
    if (auto creds = core::ReadFile(o.creds_file, kMaxCredsFileBytes); !creds.has_value()) {
      return creds.error().WithContext("NATS creds file");
    }
    s = natsOptions_SetUserCredentialsFromFiles(c->opts_, o.creds_file.c_str(), nullptr);
  }
  if (s != NATS_OK) return NatsError("nats options for " + o.url, s);
  s = natsConnection_Connect(&c->nc_, c->opts_);
  if (s != NATS_OK) return NatsError("connecting to " + o.url, s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = o.timeout.count();
  s = natsConnection_JetStream(&c->js_, c->nc_, &jo);
  if (s != NATS_OK) return NatsError("JetStream context on " + o.url, s);
  return c;
}

JetStreamConnection::~JetStreamConnection() {
  if (sub_ != nullptr) natsSubscription_Destroy(sub_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
  if (opts_ != nullptr) natsOptions_Destroy(opts_);
}

bool JetStreamConnection::connected() const {
  return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

uint64_t JetStreamConnection::max_payload() const {
  if (nc_ == nullptr) return 0;
  const int64_t n = natsConnection_GetMaxPayload(nc_);
  return n > 0 ? static_cast<uint64_t>(n) : 0;
}

core::Status JetStreamConnection::EnsureStream() {
  const JetStreamOptions& o = options_;
  const std::string subjects = o.subject_prefix + ".>";
  const std::string where = "stream " + o.stream + " on " + o.url;
  jsStreamInfo* si = nullptr;
  jsErrCode code = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&si, js_, o.stream.c_str(), nullptr, &code);
  if (s == NATS_OK) {
    bool covered = false;
    std::string have;
    for (int i = 0; si->Config != nullptr && i < si->Config->SubjectsLen; ++i) {
      const std::string subject = si->Config->Subjects[i];
      covered = covered || subject == subjects || subject == ">";
      have += (have.empty() ? "" : ", ") + subject;
    }
    jsStreamInfo_Destroy(si);
    if (!covered) {
      return core::FailedPrecondition(where + " exists with subjects [" + have +
                                      "], which do not take " + subjects);
    }
    return core::Status::Ok();
  }
  if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
    return NatsError("looking up " + where + " (is JetStream enabled: nats-server -js?)", s, code);
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subject_list[] = {subjects.c_str()};
  cfg.Name = o.stream.c_str();
  cfg.Subjects = subject_list;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Duplicates = kDuplicateWindowNs;
  code = jsErrCode(0);
  s = js_AddStream(&si, js_, &cfg, nullptr, &code);
  if (s != NATS_OK) return NatsError("creating " + where, s, code);
  jsStreamInfo_Destroy(si);
  return core::Status::Ok();
}

core::Result<PublishAck> JetStreamConnection::Publish(const std::string& subject,
                                                      std::string_view data,
                                                      const std::string& msg_id) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  po.MaxWait = options_.timeout.count();
  jsPubAck* ack = nullptr;
  jsErrCode code = jsErrCode(0);
  const natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(),
                                  static_cast<int>(data.size()), &po, &code);
  if (s != NATS_OK) return NatsError("publishing to " + subject + " on " + options_.url, s, code);
  PublishAck out;
  out.stream_seq = ack->Sequence;
  out.duplicate = ack->Duplicate;
  jsPubAck_Destroy(ack);
  return out;
}

core::Status JetStreamConnection::BindConsumer(const ConsumerOptions& co) {
  if (!core::IsNatsName(co.durable)) {
    return core::InvalidArgument("nats consumer: expected 1..64 of [A-Za-z0-9_-], got '" +
                                 co.durable + "'");
  }
  const JetStreamOptions& o = options_;
  if (!core::IsNatsName(co.kind)) {
    return core::InvalidArgument("nats consumer kind: expected 1..64 of [A-Za-z0-9_-], got '" +
                                 co.kind + "'");
  }
  const std::string filter = o.subject_prefix + ".*." + co.kind;
  const std::string where = "consumer " + co.durable + " of stream " + o.stream + " on " + o.url;
  jsConsumerInfo* ci = nullptr;
  jsErrCode code = jsErrCode(0);
  natsStatus s = js_GetConsumerInfo(&ci, js_, o.stream.c_str(), co.durable.c_str(), nullptr, &code);
  if (s != NATS_OK) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = co.durable.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.FilterSubject = filter.c_str();
    cc.AckWait = co.ack_wait.count() * kNanosPerMilli;
    cc.MaxAckPending = co.max_ack_pending;
    code = jsErrCode(0);
    s = js_AddConsumer(&ci, js_, o.stream.c_str(), &cc, nullptr, &code);
    // Another hub may have created it a moment ago: binding below tells.
    if (s != NATS_OK && code != JSConsumerNameExistErr) {
      return NatsError("creating " + where, s, code);
    }
  }
  if (ci != nullptr) jsConsumerInfo_Destroy(ci);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = o.stream.c_str();
  so.Consumer = co.durable.c_str();
  code = jsErrCode(0);
  s = js_PullSubscribe(&sub_, js_, filter.c_str(), co.durable.c_str(), nullptr, &so, &code);
  if (s != NATS_OK) {
    sub_ = nullptr;
    return NatsError("binding to " + where, s, code);
  }
  return core::Status::Ok();
}

core::Result<ConsumerState> JetStreamConnection::Consumer(const std::string& durable) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode code = jsErrCode(0);
  const natsStatus s =
      js_GetConsumerInfo(&ci, js_, options_.stream.c_str(), durable.c_str(), nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSConsumerNotFoundErr) {
    if (ci != nullptr) jsConsumerInfo_Destroy(ci);
    return core::NotFound("consumer " + durable + " of stream " + options_.stream + " on " +
                          options_.url + ": not found");
  }
  if (s != NATS_OK) return NatsError("consumer " + durable + " on " + options_.url, s, code);
  ConsumerState st;
  st.pending = ci->NumPending;
  st.ack_pending = static_cast<uint64_t>(std::max<int64_t>(0, ci->NumAckPending));
  st.redelivered = static_cast<uint64_t>(std::max<int64_t>(0, ci->NumRedelivered));
  jsConsumerInfo_Destroy(ci);
  return st;
}

core::Result<std::vector<JetStreamMessage>> JetStreamConnection::Fetch(
    int batch, std::chrono::milliseconds wait) {
  if (sub_ == nullptr) return core::FailedPrecondition("nats: Fetch before BindConsumer");
  natsMsgList list{};
  jsErrCode code = jsErrCode(0);
  const natsStatus s = natsSubscription_Fetch(&list, sub_, batch, wait.count(), &code);
  std::vector<JetStreamMessage> out;
  if (s == NATS_TIMEOUT && connected()) return out;
  if (s != NATS_OK) {
    natsMsgList_Destroy(&list);
    return NatsError("fetching from stream " + options_.stream + " on " + options_.url, s, code);
  }
  out.reserve(static_cast<size_t>(list.Count));
  for (int i = 0; i < list.Count; ++i) {
    out.emplace_back(list.Msgs[i]);
    list.Msgs[i] = nullptr;  // owned by `out` now
  }
  natsMsgList_Destroy(&list);
  return out;
}

}  // namespace vigil::pipeline
