#include "apps/vigil/datasets.h"

#include <map>

#include "core/files.h"
#include "model/calibration.h"
#include "sensor/replay.h"

namespace vigil::app {
namespace {

// One training input (a JSONL recording or a dataset trace) is read whole to be digested.
constexpr uint64_t kMaxTrainingFileBytes = uint64_t{4} << 30;

// The SHA-256 of the training data's bytes, in the order read.
class Digest {
 public:
  void Update(std::string_view s) { digest_.AddUnframed(s); }
  std::string HexFinal() { return digest_.Final(); }

 private:
  model::DatasetDigest digest_;
};

core::Result<TrainingSet> LoadAdfa(const std::string& root) {
  auto corpus = LoadAdfaCorpus(root, {sensor::AdfaSplit::kTraining});
  if (!corpus.has_value()) return corpus.error();
  TrainingSet set;
  set.dataset = "adfa-ld";
  set.digest = corpus->digest;
  set.events = corpus->events;
  for (std::vector<int32_t>& syscalls : corpus->syscalls) {
    model::TrainingTrace tr;
    tr.arch = core::Arch::kI386;
    tr.syscalls = std::move(syscalls);
    set.traces.push_back(std::move(tr));
  }
  return set;
}

core::Result<TrainingSet> LoadJsonl(const std::string& path) {
  auto bytes = core::ReadFile(path, kMaxTrainingFileBytes);
  if (!bytes.has_value()) return bytes.error();
  Digest digest;
  digest.Update(*bytes);
  auto sensor = sensor::JsonlReplaySensor::Open(path);
  if (!sensor.has_value()) return sensor.error();
  TrainingSet set;
  set.dataset = "jsonl";
  std::map<std::string, size_t> index;  // stream -> trace
  core::Event e;
  while (true) {
    auto r = (*sensor)->Next(&e);
    if (!r.has_value()) return r.error();  // training refuses bad input outright
    if (*r == sensor::ReadOutcome::kEnd) break;
    if (e.kind != core::EventKind::kSyscall) continue;
    const std::string key = e.stream.empty() ? std::to_string(e.proc.pid) : e.stream;
    auto [it, fresh] = index.emplace(key, set.traces.size());
    if (fresh) {
      set.traces.emplace_back();
      set.traces.back().subject = e.proc.comm;
      set.traces.back().arch = e.syscall.arch;
    }
    model::TrainingTrace& t = set.traces[it->second];
    if (t.arch != e.syscall.arch) {
      return core::InvalidArgument(path + ": stream \"" + key + "\" mixes architectures");
    }
    t.syscalls.push_back(e.syscall.nr);
    ++set.events;
  }
  set.digest = digest.HexFinal();
  return set;
}

}  // namespace

core::Result<AdfaCorpus> LoadAdfaCorpus(const std::string& root,
                                        std::initializer_list<sensor::AdfaSplit> splits) {
  AdfaCorpus corpus;
  Digest digest;
  for (sensor::AdfaSplit split : splits) {
    auto list = sensor::ListAdfaTraces(root, split);
    if (!list.has_value()) return list.error();
    for (sensor::AdfaTrace& t : *list) {
      auto bytes = core::ReadFile(t.path, kMaxTrainingFileBytes);
      if (!bytes.has_value()) return bytes.error();
      digest.Update(t.id);
      digest.Update("\n");
      digest.Update(*bytes);
      auto syscalls = sensor::ReadAdfaTrace(t.path);
      if (!syscalls.has_value()) return syscalls.error();
      corpus.events += syscalls->size();
      corpus.syscalls.push_back(std::move(syscalls).value());
      corpus.traces.push_back(std::move(t));
    }
  }
  corpus.digest = digest.HexFinal();
  return corpus;
}

core::Result<TrainingSet> LoadTrainingSet(const std::string& dataset, const std::string& data) {
  if (dataset == "adfa-ld") return LoadAdfa(data);
  if (dataset == "jsonl") return LoadJsonl(data);
  return core::InvalidArgument("--dataset: unknown dataset \"" + dataset +
                               "\" (use adfa-ld or jsonl)");
}

nlohmann::json TrainingLineage(const TrainingSet& set) {
  return {{"dataset", set.dataset},
          {"digest", set.digest},
          {"traces", set.traces.size()},
          {"events", set.events}};
}

}  // namespace vigil::app
