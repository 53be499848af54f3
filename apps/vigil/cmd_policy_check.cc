// vigil policy check|test: loads rules files (Falco's format plus Vigil's ML fields and actions),
// reports what is enabled and why anything is not, and evaluates rules on recorded events.

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/event_json.h"
#include "policy/rules.h"
#include "sensor/replay.h"

namespace vigil::app {
namespace {

struct PolicyOptions {
  std::vector<std::string> files;
  std::string events;
  bool json = false;
  bool list = false;
};

int RunCheck(const PolicyOptions& o) {
  auto set = policy::RuleSet::LoadFiles(o.files);
  if (!set.has_value()) return ReportError("policy check", set.error());
  size_t by_file = 0, by_loader = 0;
  nlohmann::json disabled = nlohmann::json::array();
  nlohmann::json rules = nlohmann::json::array();
  for (const policy::Rule& r : set->rules()) {
    if (!r.enabled) {
      (r.disabled_reason.empty() ? by_file : by_loader) += 1;
      if (!r.disabled_reason.empty()) {
        disabled.push_back({{"rule", r.name}, {"file", r.file}, {"line", r.line},
                            {"reason", r.disabled_reason}});
      }
    }
    rules.push_back({{"rule", r.name},
                     {"enabled", r.enabled},
                     {"priority", std::string(policy::PriorityName(r.priority))},
                     {"file", r.file},
                     {"line", r.line}});
  }
  nlohmann::json warnings = nlohmann::json::array();
  for (const policy::LoadWarning& w : set->warnings()) warnings.push_back(w.ToString());
  const size_t total = set->rules().size();
  if (o.json) {
    nlohmann::json j = {{"files", o.files},
                        {"rules", total},
                        {"enabled", set->enabled_count()},
                        {"disabled_by_file", by_file},
                        {"disabled_unsupported", by_loader},
                        {"disabled", disabled},
                        {"warnings", warnings}};
    if (o.list) j["rule_list"] = rules;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  for (const policy::LoadWarning& w : set->warnings()) {
    std::fprintf(stderr, "warning: %s\n", w.ToString().c_str());
  }
  if (o.list) {
    for (const policy::Rule& r : set->rules()) {
      std::printf("%-8s %-13s %s (%s:%d)\n", r.enabled ? "enabled" : "disabled",
                  std::string(policy::PriorityName(r.priority)).c_str(), r.name.c_str(),
                  r.file.c_str(), r.line);
    }
  }
  std::printf("%zu rules: %zu enabled, %zu disabled by the files, %zu disabled because they need "
              "fields Vigil does not have (%.0f%% enabled)\n",
              total, set->enabled_count(), by_file, by_loader,
              total ? 100.0 * static_cast<double>(set->enabled_count()) / static_cast<double>(total)
                    : 0.0);
  return kExitOk;
}

int RunTest(const PolicyOptions& o) {
  auto set = policy::RuleSet::LoadFiles(o.files);
  if (!set.has_value()) return ReportError("policy test", set.error());
  for (const policy::LoadWarning& w : set->warnings()) {
    std::fprintf(stderr, "warning: %s\n", w.ToString().c_str());
  }
  auto sensor = sensor::JsonlReplaySensor::Open(o.events);
  if (!sensor.has_value()) return ReportError("policy test", sensor.error());
  uint64_t events = 0, matches = 0, bad = 0;
  core::Event e;
  while (true) {
    auto r = (*sensor)->Next(&e);
    if (!r.has_value()) {
      ++bad;
      std::fprintf(stderr, "vigil policy test: %s\n", r.error().message().c_str());
      continue;
    }
    if (*r == sensor::ReadOutcome::kEnd) break;
    ++events;
    policy::EvalInput in;
    in.event = &e;
    for (const policy::Match& m : set->Evaluate(in)) {
      ++matches;
      nlohmann::json j = {{"rule", m.rule->name},
                          {"priority", std::string(policy::PriorityName(m.rule->priority))},
                          {"output", m.output},
                          {"event_seq", e.seq},
                          {"stream", e.stream}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
  }
  std::fprintf(stderr, "vigil policy test: %llu events, %llu matches, %llu bad lines skipped\n",
               static_cast<unsigned long long>(events), static_cast<unsigned long long>(matches),
               static_cast<unsigned long long>(bad));
  return bad > 0 ? kExitUsage : kExitOk;
}

}  // namespace

RunFn AddPolicyCommand(CLI::App& root) {
  CommandGroup group(
      root, "policy", "Rules in Falco's format with Vigil's ML fields and actions (docs/policy.md)");
  auto o = std::make_shared<PolicyOptions>();
  CLI::App* check = group.Add(
      "check", "Load rules files and report which rules are enabled, and why others are not",
      [o] { return RunCheck(*o); });
  check->add_option("files", o->files, "Rules files, loaded in order (later ones append/override)")
      ->required()
      ->check(CLI::ExistingFile);
  check->add_flag("--list", o->list, "List every rule with its state");
  check->add_flag("--json", o->json, "Print the report as JSON");
  CLI::App* test = group.Add(
      "test", "Evaluate rules on recorded events (Vigil JSONL) and print every match as JSON",
      [o] { return RunTest(*o); });
  test->add_option("files", o->files, "Rules files, loaded in order")
      ->required()
      ->check(CLI::ExistingFile);
  test->add_option("--events", o->events, "Event file (docs/event-schema.md)")->required();
  AddPolicySigningCommands(group);
  return group.Runner();
}

}  // namespace vigil::app
