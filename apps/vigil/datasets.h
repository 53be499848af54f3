#pragma once

// Loading training and evaluation data for the offline commands (train, eval).

#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/sequence_model.h"
#include "sensor/adfa.h"

namespace vigil::app {

struct TrainingSet {
  std::vector<model::TrainingTrace> traces;
  std::string digest;  // "sha256:..." over the ids and bytes of every input, in order
  std::string dataset;
  uint64_t events = 0;
};

// dataset "adfa-ld": Training_Data_Master under `data` only. dataset "jsonl": a Vigil event file,
// one trace per stream, subject = the stream's comm. Bad input names the file and place.
core::Result<TrainingSet> LoadTrainingSet(const std::string& dataset, const std::string& data);

// The set's lineage for a model file header: {"dataset", "digest", "traces", "events"}.
nlohmann::json TrainingLineage(const TrainingSet& set);
// The traces of `splits` under an ADFA-LD root, read, in split order and then by id; the digest
// ("sha256:...") covers each trace's id and bytes in that order.
struct AdfaCorpus {
  std::vector<sensor::AdfaTrace> traces;
  std::vector<std::vector<int32_t>> syscalls;  // one per trace
  std::string digest;
  uint64_t events = 0;
};
core::Result<AdfaCorpus> LoadAdfaCorpus(const std::string& root,
                                        std::initializer_list<sensor::AdfaSplit> splits);

}  // namespace vigil::app
