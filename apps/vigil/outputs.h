#pragma once

// Turning the config's output settings into what the pipeline takes; shared by the commands that
// write verdicts (replay, agent).

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/checkpoint_sink.h"
#include "agent/hub_client.h"
#include "agent/hub_sink.h"
#include "agent/nats_sink.h"
#include "core/config.h"
#include "core/metrics.h"
#include "pipeline/sink.h"
#include "pipeline/spool.h"

namespace vigil::app {

// The sink specs ("stdout", "null", "file:PATH", "hub:URL", "nats:URL") of the config's `sinks`;
// the rotation settings of a file sink go to *file_options (one set for all file sinks: MakeSink
// takes one); a hub sink's other settings are taken by HubLinkSettings(), a nats sink's by
// NatsLinkSettings().
std::vector<std::string> SinkSpecsFromConfig(const core::VigilConfig& config,
                                             pipeline::FileSinkOptions* file_options);

pipeline::SyncMode SyncModeOf(core::FsyncPolicy policy);
// "always", "batch" (kEveryN) or anything else: kNever (the flags' values are checked by CLI11).
pipeline::SyncMode SyncModeOf(const std::string& flag);

// The settings of a `hub:URL` sink (docs/hub.md, "The agent's hub sink").
struct HubLinkFlags {
  std::string token_file;  // http(s) URLs
  std::string ca;
  std::string cert, key;  // grpcs URLs
  std::string spool;  // "": <state_dir>/hub-spool
  std::string drain = "30s";
  std::string spool_sync = "always";
  bool all_verdicts = false;
};
void AddHubLinkFlags(CLI::App* cmd, HubLinkFlags* flags);
// The hub sink's settings: those of the config's hub sink (when it has one; else `flags`
// unchanged), each replaced by its --hub-* flag when that was given on the command line of `cmd`.
HubLinkFlags HubLinkSettings(const core::VigilConfig& config, const CLI::App& cmd,
                             const HubLinkFlags& flags);

// The settings of a `nats:URL` sink (docs/hub.md, "NATS JetStream").
struct NatsLinkFlags {
  std::string stream = "VIGIL";
  std::string subject_prefix = "vigil";
  std::string token_file;
  std::string creds;
  std::string spool;  // "": <state_dir>/nats-spool
  std::string drain = "30s";
  std::string spool_sync = "always";
  bool all_verdicts = false;
  // A hub URL (http(s):// or grpcs://) over which the nats sink's checkpoint sink registers the
  // host's audit key (with the --hub-* credentials); "": not registered (a NATS subject does not
  // authenticate the host, so the hub takes no key from it).
  std::string audit_key_hub;
};
void AddNatsLinkFlags(CLI::App* cmd, NatsLinkFlags* flags);
// As HubLinkSettings, for the config's nats sink and the --nats-* flags.
NatsLinkFlags NatsLinkSettings(const core::VigilConfig& config, const CLI::App& cmd,
                               const NatsLinkFlags& flags);

// The sinks of `specs`: "hub:URL" makes a hub sink (agent::OpenHubSink), "nats:URL" a NATS
// JetStream sink (agent::OpenNatsSink; at most one of each), the other forms pipeline::MakeSink.
// Errors name the spec or flag (kInvalidArgument for usage errors).
struct Outputs {
  std::vector<std::unique_ptr<pipeline::Sink>> owned;
  std::vector<pipeline::Sink*> sinks;
  agent::FindingSink* hub = nullptr;       // owned above; nullptr without a hub sink
  agent::HubLinkOptions hub_link;          // valid when hub != nullptr
  std::chrono::milliseconds hub_drain{0};  // how long to wait for the hub at the end
  agent::FindingSink* nats = nullptr;      // owned above; nullptr without a nats sink
  std::chrono::milliseconds nats_drain{0};
  // The audit checkpoints' sinks, one per hub and nats sink (agent/checkpoint_sink.h): the audit
  // log's on_checkpoint is OfferCheckpoint, and DrainCheckpoints closes them after the log.
  std::vector<std::unique_ptr<agent::CheckpointSink>> checkpoints;
};
// Hands an audit checkpoint to every checkpoint sink of `outputs` (never blocks).
void OfferCheckpoint(Outputs& outputs, const audit::CheckpointNotice& c);
// Closes the checkpoint sinks (each waiting up to its hub or nats drain time) and says on stderr
// what they sent; call it after the audit log closed (its last checkpoint is written then).
// True when none is left undelivered.
bool DrainCheckpoints(Outputs& outputs, const char* command);

core::Result<Outputs> MakeOutputs(const std::vector<std::string>& specs,
                                  const pipeline::FileSinkOptions& file_options,
                                  const HubLinkFlags& hub_flags, const NatsLinkFlags& nats_flags,
                                  const std::string& host, const std::string& state_dir,
                                  core::Registry& registry);

// Seals the last message of the hub and nats sinks and waits (up to --hub-drain, --nats-drain)
// for each to deliver every spooled message; says on stderr what was sent and what stays
// spooled. False when something stays spooled.
bool DrainHub(Outputs& outputs, const char* command);

}  // namespace vigil::app
