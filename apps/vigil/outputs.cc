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
  if (!typed("--hub-spool")) out.spool = hub->spool;
  if (!typed("--hub-spool-sync")) {
    out.spool_sync = std::string(core::FsyncPolicyName(hub->spool_sync));
  }
  if (!typed("--hub-drain")) out.drain = std::to_string(hub->drain_seconds) + "s";
  if (!typed("--hub-all-verdicts")) out.all_verdicts = hub->all_verdicts;
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
                  "hub:URL sink over https: PEM CA bundle the hub's certificate must chain to");
  cmd->add_option("--hub-spool", f->spool,
                  "hub:URL sink: spool directory of messages not yet delivered (default "
                  "<state_dir>/hub-spool)");
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

core::Result<Outputs> MakeOutputs(const std::vector<std::string>& specs,
                                  const pipeline::FileSinkOptions& file_options,
                                  const HubLinkFlags& hub_flags, const std::string& host,
                                  const std::string& state_dir, core::Registry& registry) {
  constexpr std::string_view kHubPrefix = "hub:";
  Outputs out;
  for (const std::string& spec : specs) {
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
    o.link.url = spec.substr(kHubPrefix.size());
    o.link.token_file = hub_flags.token_file;
    o.link.ca_file = hub_flags.ca;
    o.link.host = host;
    if (o.link.token_file.empty()) {
      return core::InvalidArgument("sink spec '" + spec + "' needs --hub-token-file");
    }
    VIGIL_RETURN_IF_ERROR(agent::ValidateHubLink(o.link).WithContext("sink spec '" + spec + "'"));
    o.spool_dir = hub_flags.spool.empty() ? state_dir + "/hub-spool" : hub_flags.spool;
    o.spool.sync = SyncModeOf(hub_flags.spool_sync);
    o.anomalous_only = !hub_flags.all_verdicts;
    pipeline::RecoveryReport report;
    out.hub_link = o.link;
    VIGIL_ASSIGN_OR_RETURN(auto hub, agent::HubSink::Open(std::move(o), registry, &report));
    if (report.records_replayed > 0 || !report.clean()) {
      std::fprintf(stderr,
                   "vigil: hub spool: %llu messages of an earlier run not yet delivered go "
                   "first; %zu damaged regions skipped\n",
                   static_cast<unsigned long long>(report.records_replayed), report.damage.size());
    }
    out.hub = hub.get();
    out.hub_drain = std::chrono::seconds(*drain);
    out.sinks.push_back(hub.get());
    out.owned.push_back(std::move(hub));
  }
  return out;
}

bool DrainHub(Outputs& outputs, const char* command) {
  if (outputs.hub == nullptr) return true;
  const uint64_t left = outputs.hub->Close(outputs.hub_drain);
  const agent::HubSinkCounts c = outputs.hub->Counts();
  std::fprintf(stderr,
               "vigil %s: hub %s: %llu findings sent in %llu messages (%llu already there), "
               "%llu refused, %llu retries; %llu messages stay spooled\n",
               command, outputs.hub_link.url.c_str(),
               static_cast<unsigned long long>(c.findings_sent),
               static_cast<unsigned long long>(c.messages_sent + c.messages_duplicate),
               static_cast<unsigned long long>(c.messages_duplicate),
               static_cast<unsigned long long>(c.messages_failed),
               static_cast<unsigned long long>(c.retries), static_cast<unsigned long long>(left));
  return left == 0;
}

}  // namespace vigil::app
