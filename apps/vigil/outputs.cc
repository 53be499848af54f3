#include "apps/vigil/outputs.h"

#include <cstdio>

namespace vigil::app {

std::vector<std::string> SinkSpecsFromConfig(const core::VigilConfig& config,
                                             pipeline::FileSinkOptions* file_options) {
  std::vector<std::string> specs;
  for (const core::SinkConfig& s : config.sinks) {
    switch (s.type) {
      case core::SinkType::kStdout:
        specs.push_back("stdout");
        break;
      case core::SinkType::kNull:
        specs.push_back("null");
        break;
      case core::SinkType::kFile:
        specs.push_back("file:" + s.path);
        file_options->max_bytes = s.rotate_bytes;
        file_options->keep = s.keep;
        break;
      case core::SinkType::kHub:
        specs.push_back("hub:" + s.hub.url);
        break;
      case core::SinkType::kNats:
        specs.push_back("nats:" + s.nats.url);
        break;
    }
  }
  return specs;
}

HubLinkFlags HubLinkSettings(const core::VigilConfig& config, const CLI::App& cmd,
                             const HubLinkFlags& flags) {
  const core::HubSinkConfig* hub = nullptr;
  for (const core::SinkConfig& s : config.sinks) {
    if (s.type == core::SinkType::kHub) hub = &s.hub;
  }
  if (hub == nullptr) return flags;
  auto typed = [&](const char* flag) { return cmd.count(flag) > 0; };
  HubLinkFlags out = flags;
  if (!typed("--hub-token-file")) out.token_file = hub->token_file;
  if (!typed("--hub-ca")) out.ca = hub->ca;
  if (!typed("--hub-cert")) out.cert = hub->cert;
  if (!typed("--hub-key")) out.key = hub->key;
  if (!typed("--hub-spool")) out.spool = hub->spool;
  if (!typed("--hub-spool-sync")) {
    out.spool_sync = std::string(core::FsyncPolicyName(hub->spool_sync));
  }
  if (!typed("--hub-drain")) out.drain = std::to_string(hub->drain_seconds) + "s";
  if (!typed("--hub-all-verdicts")) out.all_verdicts = hub->all_verdicts;
  return out;
}

NatsLinkFlags NatsLinkSettings(const core::VigilConfig& config, const CLI::App& cmd,
                               const NatsLinkFlags& flags) {
  const core::NatsSinkConfig* nats = nullptr;
  for (const core::SinkConfig& s : config.sinks) {
    if (s.type == core::SinkType::kNats) nats = &s.nats;
  }
  if (nats == nullptr) return flags;
  auto typed = [&](const char* flag) { return cmd.count(flag) > 0; };
  NatsLinkFlags out = flags;
  if (!typed("--nats-stream")) out.stream = nats->stream;
  if (!typed("--nats-subject-prefix")) out.subject_prefix = nats->subject_prefix;
  if (!typed("--nats-token-file")) out.token_file = nats->token_file;
  if (!typed("--nats-creds")) out.creds = nats->creds;
  if (!typed("--nats-spool")) out.spool = nats->spool;
  if (!typed("--nats-spool-sync")) {
    out.spool_sync = std::string(core::FsyncPolicyName(nats->spool_sync));
  }
  if (!typed("--nats-drain")) out.drain = std::to_string(nats->drain_seconds) + "s";
  if (!typed("--nats-all-verdicts")) out.all_verdicts = nats->all_verdicts;
  if (!typed("--nats-audit-key-hub")) out.audit_key_hub = nats->audit_key_hub;
  return out;
}

pipeline::SyncMode SyncModeOf(core::FsyncPolicy policy) {
  switch (policy) {
    case core::FsyncPolicy::kAlways:
      return pipeline::SyncMode::kAlways;
    case core::FsyncPolicy::kBatch:
      return pipeline::SyncMode::kEveryN;
    case core::FsyncPolicy::kNever:
      return pipeline::SyncMode::kNever;
  }
  return pipeline::SyncMode::kAlways;
}

pipeline::SyncMode SyncModeOf(const std::string& flag) {
  if (flag == "always") return pipeline::SyncMode::kAlways;
  if (flag == "batch") return pipeline::SyncMode::kEveryN;
  return pipeline::SyncMode::kNever;
}

void AddHubLinkFlags(CLI::App* cmd, HubLinkFlags* f) {
  cmd->add_option("--hub-token-file", f->token_file,
                  "hub:URL sink: file whose first line is an agent token for this host (read at "
                  "every request, so a renewed token is picked up)");
  cmd->add_option("--hub-ca", f->ca,
                  "hub:URL sink over https: PEM CA bundle the hub's certificate must chain to; "
                  "over grpcs: the hub CA (ca.pem from vigil agent enrol)");
  cmd->add_option("--hub-cert", f->cert,
                  "hub:grpcs://HOST:PORT sink (the hub's agent port, mTLS): the client "
                  "certificate from vigil agent enrol (agent.pem)");
  cmd->add_option("--hub-key", f->key,
                  "hub:grpcs://HOST:PORT sink: the client certificate's key (agent.key)");
  cmd->add_option("--hub-spool", f->spool,
                  "hub:URL sink: spool directory of messages not yet delivered (default "
                  "<state_dir>/hub-spool; audit checkpoints: the same path + \"-checkpoints\")");
  cmd->add_option("--hub-spool-sync", f->spool_sync,
                  "hub:URL sink: spool fsync policy: always (each message), batch or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "batch", "never"}));
  cmd->add_option("--hub-drain", f->drain,
                  "hub:URL sink: at the end, wait this long for the hub to take what is spooled "
                  "(the rest goes first at the next start)")
      ->capture_default_str();
  cmd->add_flag("--hub-all-verdicts", f->all_verdicts,
                "hub:URL sink: send every verdict, not only anomalous ones");
}

void AddNatsLinkFlags(CLI::App* cmd, NatsLinkFlags* f) {
  cmd->add_option("--nats-stream", f->stream,
                  "nats:URL sink: the JetStream stream (created when absent, subjects "
                  "<prefix>.>)")
      ->capture_default_str();
  cmd->add_option("--nats-subject-prefix", f->subject_prefix,
                  "nats:URL sink: findings are published to <prefix>.<host>.findings, audit "
                  "checkpoints to <prefix>.<host>.checkpoints")
      ->capture_default_str();
  cmd->add_option("--nats-token-file", f->token_file,
                  "nats:URL sink: file whose first line is the NATS server's token");
  cmd->add_option("--nats-creds", f->creds, "nats:URL sink: NATS user credentials file");
  cmd->add_option("--nats-spool", f->spool,
                  "nats:URL sink: spool directory of messages not yet acknowledged by the stream "
                  "(default <state_dir>/nats-spool; audit checkpoints: the same path + "
                  "\"-checkpoints\")");
  cmd->add_option("--nats-spool-sync", f->spool_sync,
                  "nats:URL sink: spool fsync policy: always (each message), batch or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "batch", "never"}));
  cmd->add_option("--nats-drain", f->drain,
                  "nats:URL sink: at the end, wait this long for the stream to take what is "
                  "spooled (the rest goes first at the next start)")
      ->capture_default_str();
  cmd->add_flag("--nats-all-verdicts", f->all_verdicts,
                "nats:URL sink: send every verdict, not only anomalous ones");
  cmd->add_option("--nats-audit-key-hub", f->audit_key_hub,
                  "nats:URL sink: hub URL (http(s):// with --hub-token-file, or grpcs:// with "
                  "--hub-cert/--hub-key/--hub-ca) where this host registers its audit key, so "
                  "that the hub verifies the checkpoints it gets over NATS");
}

namespace {

void SayRecovered(const char* what, const pipeline::RecoveryReport& report) {
  if (report.records_replayed > 0 || !report.clean()) {
    std::fprintf(stderr,
                 "vigil: %s spool: %llu messages of an earlier run not yet delivered go "
                 "first; %zu damaged regions skipped\n",
                 what, static_cast<unsigned long long>(report.records_replayed),
                 report.damage.size());
  }
}

// The link over which a nats sink registers the host's audit key (NatsLinkFlags::audit_key_hub),
// with the hub link's credentials.
core::Result<agent::HubLinkOptions> AuditKeyLink(const NatsLinkFlags& flags,
                                                 const HubLinkFlags& hub_flags,
                                                 const std::string& host) {
  agent::HubLinkOptions link;
  link.url = flags.audit_key_hub;
  link.host = host;
  link.ca_file = hub_flags.ca;
  if (agent::IsGrpcHubUrl(link.url)) {
    link.cert_file = hub_flags.cert;
    link.key_file = hub_flags.key;
  } else {
    link.token_file = hub_flags.token_file;
  }
  link.keep_alive = false;
  VIGIL_RETURN_IF_ERROR(agent::ValidateHubLink(link).WithContext("--nats-audit-key-hub"));
  return link;
}

core::Status AddNatsSink(const std::string& spec, const NatsLinkFlags& flags,
                         const HubLinkFlags& hub_flags, const std::string& host,
                         const std::string& state_dir, core::Registry& registry, Outputs* out) {
  if (out->nats != nullptr) {
    return core::InvalidArgument("sink spec '" + spec + "': only one nats sink is allowed");
  }
  auto drain = core::ParseDurationSeconds(flags.drain);
  if (!drain.has_value()) return drain.error().WithContext("--nats-drain");
  std::unique_ptr<agent::HubClient> key_client;
  if (!flags.audit_key_hub.empty()) {
    VIGIL_ASSIGN_OR_RETURN(const agent::HubLinkOptions link, AuditKeyLink(flags, hub_flags, host));
    auto client = agent::HubClient::Create(link);
    if (!client.has_value()) return client.error().WithContext("--nats-audit-key-hub");
    key_client = std::move(client).value();
  }
  agent::NatsSinkOptions o;
  o.host = host;
  o.nats.url = spec.substr(spec.find(':') + 1);
  o.nats.stream = flags.stream;
  o.nats.subject_prefix = flags.subject_prefix;
  o.nats.token_file = flags.token_file;
  o.nats.creds_file = flags.creds;
  VIGIL_RETURN_IF_ERROR(
      pipeline::ValidateJetStreamOptions(o.nats).WithContext("sink spec '" + spec + "'"));
  o.spool_dir = flags.spool.empty() ? state_dir + "/nats-spool" : flags.spool;
  o.spool.sync = SyncModeOf(flags.spool_sync);
  o.anomalous_only = !flags.all_verdicts;
  pipeline::RecoveryReport report;
  const pipeline::JetStreamOptions nats_options = o.nats;
  VIGIL_ASSIGN_OR_RETURN(auto nats, agent::OpenNatsSink(std::move(o), registry, &report));
  SayRecovered("nats", report);
  agent::CheckpointSinkOptions co;
  co.kind = "nats";
  co.host = host;
  co.spool_dir = (flags.spool.empty() ? state_dir + "/nats-spool" : flags.spool) + "-checkpoints";
  co.spool.sync = SyncModeOf(flags.spool_sync);
  pipeline::RecoveryReport checkpoint_report;
  std::unique_ptr<agent::FindingTransport> transport = agent::MakeNatsTransport(
      nats_options, pipeline::HostSubject(nats_options.subject_prefix, host, "checkpoints"));
  if (key_client != nullptr) {
    transport = agent::MakeAuditKeyRegistering(std::move(transport), std::move(key_client));
  }
  VIGIL_ASSIGN_OR_RETURN(
      auto checkpoints,
      agent::CheckpointSink::Open(co, std::move(transport), registry, &checkpoint_report));
  SayRecovered("nats checkpoint", checkpoint_report);
  out->checkpoints.push_back(std::move(checkpoints));
  out->nats = nats.get();
  out->nats_drain = std::chrono::seconds(*drain);
  out->sinks.push_back(nats.get());
  out->owned.push_back(std::move(nats));
  return core::Status::Ok();
}

// What a link sink sent, on stderr; true when nothing stays spooled.
bool Drain(agent::FindingSink* sink, std::chrono::milliseconds limit, const char* command) {
  if (sink == nullptr) return true;
  const uint64_t left = sink->Close(limit);
  const agent::FindingSinkCounts c = sink->Counts();
  std::fprintf(stderr,
               "vigil %s: %s %s: %llu findings sent in %llu messages (%llu already there), "
               "%llu refused, %llu retries; %llu messages stay spooled\n",
               command, sink->options().kind.c_str(), sink->Endpoint().c_str(),
               static_cast<unsigned long long>(c.findings_sent),
               static_cast<unsigned long long>(c.messages_sent + c.messages_duplicate),
               static_cast<unsigned long long>(c.messages_duplicate),
               static_cast<unsigned long long>(c.messages_failed),
               static_cast<unsigned long long>(c.retries), static_cast<unsigned long long>(left));
  return left == 0;
}

}  // namespace

core::Result<Outputs> MakeOutputs(const std::vector<std::string>& specs,
                                  const pipeline::FileSinkOptions& file_options,
                                  const HubLinkFlags& hub_flags, const NatsLinkFlags& nats_flags,
                                  const std::string& host, const std::string& state_dir,
                                  core::Registry& registry) {
  constexpr std::string_view kHubPrefix = "hub:";
  constexpr std::string_view kNatsPrefix = "nats:";
  Outputs out;
  for (const std::string& spec : specs) {
    if (spec.rfind(kNatsPrefix, 0) == 0) {
      VIGIL_RETURN_IF_ERROR(
          AddNatsSink(spec, nats_flags, hub_flags, host, state_dir, registry, &out));
      continue;
    }
    if (spec.rfind(kHubPrefix, 0) != 0) {
      VIGIL_ASSIGN_OR_RETURN(auto sink, pipeline::MakeSink(spec, file_options));
      out.sinks.push_back(sink.get());
      out.owned.push_back(std::move(sink));
      continue;
    }
    if (out.hub != nullptr) {
      return core::InvalidArgument("sink spec '" + spec + "': only one hub sink is allowed");
    }
    auto drain = core::ParseDurationSeconds(hub_flags.drain);
    if (!drain.has_value()) return drain.error().WithContext("--hub-drain");
    agent::HubSinkOptions o;
    o.host = host;
    o.link.url = spec.substr(kHubPrefix.size());
    o.link.token_file = hub_flags.token_file;
    o.link.ca_file = hub_flags.ca;
    o.link.cert_file = hub_flags.cert;
    o.link.key_file = hub_flags.key;
    o.link.host = host;
    if (o.link.token_file.empty() && !agent::IsGrpcHubUrl(o.link.url)) {
      return core::InvalidArgument("sink spec '" + spec + "' needs --hub-token-file");
    }
    VIGIL_RETURN_IF_ERROR(agent::ValidateHubLink(o.link).WithContext("sink spec '" + spec + "'"));
    o.spool_dir = hub_flags.spool.empty() ? state_dir + "/hub-spool" : hub_flags.spool;
    o.spool.sync = SyncModeOf(hub_flags.spool_sync);
    o.anomalous_only = !hub_flags.all_verdicts;
    pipeline::RecoveryReport report;
    out.hub_link = o.link;
    VIGIL_ASSIGN_OR_RETURN(auto hub, agent::OpenHubSink(std::move(o), registry, &report));
    SayRecovered("hub", report);
    agent::CheckpointSinkOptions co;
    co.kind = "hub";
    co.host = host;
    co.spool_dir = (hub_flags.spool.empty() ? state_dir + "/hub-spool" : hub_flags.spool) +
                   "-checkpoints";
    co.spool.sync = SyncModeOf(hub_flags.spool_sync);
    VIGIL_ASSIGN_OR_RETURN(auto transport, agent::MakeCheckpointHubTransport(out.hub_link));
    pipeline::RecoveryReport checkpoint_report;
    VIGIL_ASSIGN_OR_RETURN(
        auto checkpoints,
        agent::CheckpointSink::Open(co, std::move(transport), registry, &checkpoint_report));
    SayRecovered("hub checkpoint", checkpoint_report);
    out.checkpoints.push_back(std::move(checkpoints));
    out.hub = hub.get();
    out.hub_drain = std::chrono::seconds(*drain);
    out.sinks.push_back(hub.get());
    out.owned.push_back(std::move(hub));
  }
  return out;
}

void OfferCheckpoint(Outputs& outputs, const audit::CheckpointNotice& c) {
  for (const auto& sink : outputs.checkpoints) sink->Offer(c);
}

bool DrainCheckpoints(Outputs& outputs, const char* command) {
  bool all = true;
  for (const auto& sink : outputs.checkpoints) {
    const uint64_t left =
        sink->Close(sink->kind() == "hub" ? outputs.hub_drain : outputs.nats_drain);
    const agent::CheckpointSinkCounts c = sink->Counts();
    std::fprintf(stderr,
                 "vigil %s: audit checkpoints to %s %s: %llu sent (%llu already there), %llu "
                 "refused, %llu dropped for room, %llu lost in the spool, %llu retries; %llu not "
                 "delivered (spooled for the next start)\n",
                 command, sink->kind().c_str(), sink->Endpoint().c_str(),
                 static_cast<unsigned long long>(c.sent + c.duplicate),
                 static_cast<unsigned long long>(c.duplicate),
                 static_cast<unsigned long long>(c.failed),
                 static_cast<unsigned long long>(c.dropped),
                 static_cast<unsigned long long>(c.damaged),
                 static_cast<unsigned long long>(c.retries), static_cast<unsigned long long>(left));
    all = all && left == 0;
  }
  return all;
}

bool DrainHub(Outputs& outputs, const char* command) {
  const bool hub = Drain(outputs.hub, outputs.hub_drain, command);
  const bool nats = Drain(outputs.nats, outputs.nats_drain, command);
  return hub && nats;
}

}  // namespace vigil::app
