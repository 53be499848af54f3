#include "govern/provenance.h"

#include <sodium.h>

#include <cmath>
#include <cstdio>
#include <ctime>

#include "govern/internal/files.h"

namespace vigil::govern {

using core::InvalidArgument;
using core::Result;
using nlohmann::json;

namespace {

void Flatten(const json& j, const std::string& prefix, json* out) {
  for (const auto& [key, value] : j.items()) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (value.is_number() && std::isfinite(value.get<double>())) {
      (*out)[name] = value;
    } else if (value.is_object()) {
      Flatten(value, name, out);
    }
  }
}

// The training data as the header describes it, and its digest when it has a valid one.
Result<std::string> TrainingDigest(const json& header, std::string_view source) {
  if (!header.contains("training")) return std::string();
  const json& t = header["training"];
  if (!t.is_object()) return InvalidArgument(std::string(source) + ": header \"training\" is not an object");
  if (!t.contains("digest")) return std::string();
  std::string digest = t["digest"].is_string() ? t["digest"].get<std::string>() : "";
  if (digest.rfind("sha256:", 0) == 0) digest.erase(0, 7);
  if (!internal::IsSha256Hex(digest)) {
    return InvalidArgument(std::string(source) + ": header \"training.digest\" is not "
                           "[sha256:] and 64 lower-case hex digits");
  }
  return digest;
}

std::string HeaderString(const json& header, const char* key) {
  auto it = header.find(key);
  return it != header.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string DatasetName(const json& header) {
  if (header.contains("training") && header["training"].is_object()) {
    return HeaderString(header["training"], "dataset");
  }
  return "";
}

std::string NumberText(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v.get<double>());
  return buf;
}

}  // namespace

Result<json> ModelMetrics(const json& header, std::string_view source) {
  json out = json::object();
  if (header.contains("metrics")) {
    if (!header["metrics"].is_object()) {
      return InvalidArgument(std::string(source) + ": header \"metrics\" is not an object");
    }
    Flatten(header["metrics"], "", &out);
  }
  if (header.contains("calibration")) {
    const json& cal = header["calibration"];
    if (!cal.is_object()) {
      return InvalidArgument(std::string(source) + ": header \"calibration\" is not an object");
    }
    const json* global = &cal;
    std::string prefix = "calibration";
    if (!cal.contains("achieved_fpr") && cal.contains("*") && cal["*"].is_object()) {
      global = &cal["*"];
      prefix = "calibration.global";
    }
    for (const char* key : {"threshold", "achieved_fpr"}) {
      if (global->contains(key) && (*global)[key].is_number() &&
          std::isfinite((*global)[key].get<double>())) {
        out[prefix + "." + key] = (*global)[key];
      }
    }
  }
  return out;
}

std::string RandomUuid() {
  if (sodium_init() < 0) std::abort();
  uint8_t b[16];
  randombytes_buf(b, sizeof(b));
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  char buf[37];
  std::snprintf(buf, sizeof(buf),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return buf;
}

Result<json> BuildProvenance(const ModelArtifact& model, const std::string& generator_version,
                             int64_t now_unix, std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(const std::string training_digest, TrainingDigest(model.header, source));
  VIGIL_ASSIGN_OR_RETURN(const json metrics, ModelMetrics(model.header, source));
  json external = {{"model", {{"family", HeaderString(model.header, "family")},
                              {"name", HeaderString(model.header, "name")},
                              {"version", HeaderString(model.header, "version")}}}};
  for (const char* key : {"params", "training"}) {
    if (model.header.contains(key)) external[key] = model.header[key];
  }
  json build = {{"buildType", "urn:vigil:build-type:model-training:v1"},
                {"externalParameters", external},
                {"internalParameters",
                 {{"code_version", HeaderString(model.header, "code_version")},
                  {"format_version", model.header.value("format_version", json())}}}};
  if (!training_digest.empty()) {
    const std::string dataset = DatasetName(model.header);
    build["resolvedDependencies"] = json::array(
        {{{"name", "training-data" + (dataset.empty() ? "" : ":" + dataset)},
          {"digest", {{"sha256", training_digest}}}}});
  }
  // The builder is the code that trained the model, as the header records it.
  std::string code_version = HeaderString(model.header, "code_version");
  json run = {{"builder", {{"id", "urn:vigil:builder:vigil-train"}}}};
  if (!code_version.empty()) run["builder"]["version"] = {{"vigil", code_version}};
  json metadata = json::object();
  if (model.header.contains("created_unix") && model.header["created_unix"].is_number_integer()) {
    metadata["finishedOn"] = Rfc3339(model.header["created_unix"].get<int64_t>());
  }
  if (!metadata.empty()) run["metadata"] = metadata;
  run["byproducts"] = json::array(
      {{{"name", "metrics"}, {"mediaType", "application/json"}, {"annotations", metrics}},
       {{"name", "provenance-generator"},
        {"annotations",
         {{"generator", "vigil " + generator_version}, {"generated", Rfc3339(now_unix)}}}}});
  return json{{"_type", "https://in-toto.io/Statement/v1"},
              {"subject", json::array({{{"name", model.file_name},
                                        {"digest", {{"sha256", model.sha256}}}}})},
              {"predicateType", "https://slsa.dev/provenance/v1"},
              {"predicate", {{"buildDefinition", build}, {"runDetails", run}}}};
}

Result<json> BuildModelBom(const ModelArtifact& model, const std::string& generator_version,
                           int64_t now_unix, const std::string& serial_uuid,
                           std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(const std::string training_digest, TrainingDigest(model.header, source));
  VIGIL_ASSIGN_OR_RETURN(const json metrics, ModelMetrics(model.header, source));
  const std::string family = HeaderString(model.header, "family");
  const std::string model_ref = "model:sha256:" + model.sha256;

  json params = {{"approach", {{"type", "unsupervised"}}},
                 {"task", "anomaly-detection"},
                 {"architectureFamily", family}};
  if (model.header.contains("params") && model.header["params"].is_object()) {
    std::string arch = family;
    for (const auto& [k, v] : model.header["params"].items()) {
      if (v.is_primitive()) arch += (arch == family ? " (" : ", ") + k + "=" + v.dump();
    }
    if (arch != family) arch += ")";
    params["modelArchitecture"] = arch;
  }
  params["inputs"] = json::array({{{"format", "system-call sequences per program"}}});
  params["outputs"] = json::array({{{"format", "anomaly score in [0, 1] with explanation"}}});

  json components = json::array();
  const std::string dataset = DatasetName(model.header);
  if (!dataset.empty() || !training_digest.empty()) {
    const std::string data_ref = "data:training:" + (training_digest.empty()
                                                          ? model.sha256
                                                          : training_digest);
    json data = {{"type", "data"},
                 {"bom-ref", data_ref},
                 {"name", dataset.empty() ? std::string("training data") : dataset},
                 {"data", json::array({{{"type", "dataset"},
                                        {"name", dataset.empty() ? "training data" : dataset},
                                        {"description", "normal traces the model was trained on"}}})}};
    if (!training_digest.empty()) {
      data["hashes"] = json::array({{{"alg", "SHA-256"}, {"content", training_digest}}});
    }
    json props = json::array();
    for (const auto& [k, v] : model.header["training"].items()) {
      if (k != "digest" && v.is_primitive()) {
        props.push_back({{"name", "vigil:training." + k},
                         {"value", v.is_string() ? v.get<std::string>() : v.dump()}});
      }
    }
    if (!props.empty()) data["properties"] = props;
    components.push_back(data);
    params["datasets"] = json::array({{{"ref", data_ref}}});
  }

  json perf = json::array();
  for (const auto& [name, value] : metrics.items()) {
    perf.push_back({{"type", name}, {"value", NumberText(value)}});
  }
  json card = {{"modelParameters", params}};
  if (!perf.empty()) card["quantitativeAnalysis"] = {{"performanceMetrics", perf}};

  json component = {{"type", "machine-learning-model"},
                    {"bom-ref", model_ref},
                    {"name", HeaderString(model.header, "name")},
                    {"version", HeaderString(model.header, "version")},
                    {"hashes", json::array({{{"alg", "SHA-256"}, {"content", model.sha256}}})},
                    {"properties", json::array({{{"name", "vigil:file"}, {"value", model.file_name}},
                                                {{"name", "vigil:family"}, {"value", family}},
                                                {{"name", "vigil:size"},
                                                 {"value", std::to_string(model.size)}}})},
                    {"modelCard", card}};
  return internal::CycloneDxBom(component, components, generator_version, now_unix,
                               serial_uuid);
}

std::string Rfc3339(int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace internal {

json CycloneDxBom(const json& subject, const json& components, const std::string& tool_version,
                  int64_t now_unix, const std::string& serial_uuid) {
  json depends_on = json::array();
  for (const json& c : components) depends_on.push_back(c["bom-ref"]);
  json deps = json::array({{{"ref", subject["bom-ref"]}, {"dependsOn", depends_on}}});
  for (const json& ref : depends_on) deps.push_back({{"ref", ref}});
  return json{{"bomFormat", "CycloneDX"},
              {"specVersion", "1.5"},
              {"serialNumber", "urn:uuid:" + serial_uuid},
              {"version", 1},
              {"metadata",
               {{"timestamp", Rfc3339(now_unix)},
                {"tools", {{"components", json::array({{{"type", "application"},
                                                        {"name", "vigil"},
                                                        {"version", tool_version}}})}}},
                {"component", subject}}},
              {"components", components},
              {"dependencies", deps}};
}

}  // namespace internal

}  // namespace vigil::govern
