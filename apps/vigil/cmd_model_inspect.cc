// vigil model inspect MODEL: what a model file holds (identity, lineage, calibration, drift
// reference, metrics, payload size, checksum), after the loader has checked all of it.

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/files.h"
#include "model/calibration.h"
#include "model/drift.h"
#include "model/loader.h"
#include "model/model_file.h"

namespace vigil::app {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
};

std::string Hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// "2026-11-26T04:00:00Z" for a Unix time in seconds; "" when it does not convert.
std::string IsoTime(int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "";
  char buf[32];
  if (std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "";
  return buf;
}

const nlohmann::json* Find(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// One line of "key=value" pairs for a flat JSON object (nested values as compact JSON).
std::string Pairs(const nlohmann::json& j) {
  std::string out;
  for (const auto& [k, v] : j.items()) {
    if (!out.empty()) out += ' ';
    out += k + '=' + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::string Str(const nlohmann::json* j) {
  if (j == nullptr) return "";
  return j->is_string() ? j->get<std::string>() : j->dump();
}

int RunInspect(const InspectOptions& o) {
  auto bytes = core::ReadFile(o.path, model::kMaxModelFileBytes);
  if (!bytes.has_value()) return ReportError("model inspect", bytes.error());
  auto file = model::DecodeModelFile(*bytes, o.path);
  if (!file.has_value()) return ReportError("model inspect", file.error());
  // The family's own loader checks the payload (and the header records it reads back).
  auto loaded = model::LoadModelFromFile(*file, o.path);
  if (!loaded.has_value()) return ReportError("model inspect", loaded.error());
  auto record = model::TrainingRecord::ReadFrom(file->header, o.path);
  if (!record.has_value()) return ReportError("model inspect", record.error());

  const nlohmann::json& h = file->header;
  // The container ends with the SHA-256 of everything before it (DecodeModelFile verified it).
  const std::string checksum = "sha256:" + Hex(std::string_view(*bytes).substr(bytes->size() - 32));
  nlohmann::json out;
  out["file"] = o.path;
  out["family"] = (*loaded)->family();
  out["name"] = (*loaded)->name();
  out["version"] = (*loaded)->version();
  out["format_version"] = h.value("format_version", 0u);
  out["payload_bytes"] = file->payload.size();
  out["file_bytes"] = bytes->size();
  out["checksum"] = checksum;
  nlohmann::json lineage = nlohmann::json::object();
  if (const auto* c = Find(h, "created_unix"); c != nullptr && c->is_number_integer()) {
    lineage["created_unix"] = *c;
    lineage["created"] = IsoTime(c->get<int64_t>());
  }
  for (const char* key : {"code_version", "training", "parameters", "params"}) {
    if (const auto* v = Find(h, key)) lineage[key] = *v;
  }
  out["lineage"] = lineage;
  if (record->calibration.has_value()) {
    nlohmann::json c = nlohmann::json::object();
    model::CalibrationToJson(*record->calibration, c);
    out["calibration"] = c;
  } else if (const auto* c = Find(h, "calibration")) {
    out["calibration"] = *c;  // a file from before calibration records: as written
  } else {
    out["calibration"] = nullptr;
  }
  nlohmann::json drift = nlohmann::json::object();
  if (record->drift.score.has_value()) {
    drift["score"] = {{"bins", record->drift.score->bins()},
                      {"samples", record->drift.score->samples}};
  }
  nlohmann::json features = nlohmann::json::array();
  for (const model::FeatureReference& f : record->drift.features) features.push_back(f.name);
  if (!features.empty()) drift["features"] = features;
  out["drift_reference"] = drift;
  out["metrics"] = Find(h, "metrics") != nullptr ? *Find(h, "metrics") : nlohmann::json(nullptr);

  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%s\n", o.path.c_str());
  std::printf("  family:          %s\n", (*loaded)->family().c_str());
  std::printf("  name:            %s\n", (*loaded)->name().c_str());
  std::printf("  version:         %s\n", (*loaded)->version().c_str());
  std::printf("  format version:  %s\n", out["format_version"].dump().c_str());
  std::printf("  payload:         %zu bytes (file %zu bytes)\n", file->payload.size(),
              bytes->size());
  std::printf("  checksum:        %s (verified)\n", checksum.c_str());
  std::printf("lineage\n");
  if (lineage.contains("created")) {
    std::printf("  created:         %s\n", lineage["created"].get<std::string>().c_str());
  }
  if (lineage.contains("code_version")) {
    std::printf("  code version:    %s\n", Str(&lineage["code_version"]).c_str());
  }
  if (const auto* t = Find(lineage, "training")) {
    std::printf("  training data:   %s\n", Pairs(*t).c_str());
  }
  if (const auto* p = Find(lineage, "parameters")) {
    std::printf("  parameters:      %s\n", Pairs(*p).c_str());
  }
  if (const auto* p = Find(lineage, "params")) {
    std::printf("  family params:   %s\n", Pairs(*p).c_str());
  }
  std::printf("calibration\n");
  if (record->calibration.has_value()) {
    const model::CalibrationRecord& c = *record->calibration;
    std::printf("  method:          %s\n", c.method.c_str());
    std::printf("  threshold:       %.6g (%s)\n", c.threshold, c.unit.c_str());
    std::printf("  false alarms:    target %.2f%%, achieved %.2f%% on %llu samples\n",
                c.target_fpr * 100, c.achieved_fpr * 100,
                static_cast<unsigned long long>(c.samples));
    std::printf("  calibration set: %s\n", c.digest.empty() ? "(unknown)" : c.digest.c_str());
  } else if (const auto* c = Find(h, "calibration")) {
    std::printf("  (no calibration record) %s\n", c->dump().c_str());
  } else {
    std::printf("  (none)\n");
  }
  std::printf("drift reference\n");
  if (record->drift.empty()) {
    std::printf("  (none)\n");
  } else {
    if (record->drift.score.has_value()) {
      std::printf("  score:           %zu bins over %llu samples\n", record->drift.score->bins(),
                  static_cast<unsigned long long>(record->drift.score->samples));
    }
    if (!record->drift.features.empty()) {
      std::string names;
      for (const auto& f : record->drift.features) names += (names.empty() ? "" : ", ") + f.name;
      std::printf("  features:        %s\n", names.c_str());
    }
  }
  std::printf("metrics\n");
  if (const auto* m = Find(h, "metrics"); m != nullptr && m->is_object() && !m->empty()) {
    for (const auto& [k, v] : m->items()) {
      std::printf("  %-16s %s\n", (k + ":").c_str(), Str(&v).c_str());
    }
  } else {
    std::printf("  (none recorded)\n");
  }
  return kExitOk;
}

}  // namespace

void AddModelInspectCommand(CommandGroup& model) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = model.Add(
      "inspect",
      "Show a model file's family, name, version, lineage, calibration, drift reference, "
      "metrics, payload size and checksum (after checking the whole file)",
      [o] { return RunInspect(*o); });
  cmd->add_option("MODEL", o->path, "The model file")->required();
  cmd->add_flag("--json", o->json, "Print the description as JSON");
  cmd->footer("Exit codes: 0 ok, 2 bad usage or a bad model file (the error names the file and "
              "the fault), 1 other failures.");
}

}  // namespace vigil::app
