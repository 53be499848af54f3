// The Vigil side of bench/compare_sklearn: builds the feature matrices both sides use, writes
// them as CSV for scikit-learn, and measures Vigil's isolation forest on them.
//
//   vigil_iforest --out DIR [--adfa DIR] [--batadal DIR] [--seeds N] [--repeats N]
//
// Matrices (one row per line, no header, values printed with 9 significant digits, which
// round-trips a float exactly):
//   adfa_train.csv    Training_Data_Master: per-trace system-call counts, one column per call
//                     name seen in training, then <other>
//   adfa_test.csv     Validation_Data_Master (normal) then Attack_Data_Master, same columns
//   adfa_labels.csv   0 / 1 per test row
//   batadal_train.csv BATADAL_dataset03: the 43 signal columns (DATETIME and ATT_FLAG dropped)
//   batadal_test.csv  BATADAL_dataset04, same columns
//   batadal_labels.csv ATT_FLAG of BATADAL_dataset04_full_labels.csv (every attack hour; the
//                     ATT_FLAG in dataset04 itself marks only 219 of the 492)
// Then for each dataset and each seed 1..N: IsolationForest::Train (100 trees, sample size 256,
// every training row used: calibration_fraction 0, as scikit-learn fits on all rows), the
// scores of the test rows, their ROC AUC, the training CPU time and the scoring CPU time
// (median of --repeats passes over all test rows, one thread), both row by row (Score, the
// pipeline's path) and as one batch (ScoreBatch, as scikit-learn's score_samples scores).
// Prints one JSON object.
// Exit 2 for unreadable or malformed input (the message names the file and line).

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/evaluation.h"
#include "model/features.h"
#include "model/isolation_forest.h"
#include "sensor/adfa.h"

namespace vigil::bench {
namespace {

using Matrix = std::vector<std::vector<float>>;

struct Problem {
  std::string name;
  Matrix train, test;
  std::vector<bool> labels;
};

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  const size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) out.push_back(Trim(cell));
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

// A CSV with a header; `cells` gets every data row's trimmed cells (all rows as wide as the
// header).
core::Status ReadCsv(const std::string& path, std::vector<std::string>* header,
                     std::vector<std::vector<std::string>>* cells) {
  std::ifstream in(path);
  if (!in) return core::NotFound(path + ": cannot open");
  std::string line;
  if (!std::getline(in, line)) return core::InvalidArgument(path + ":1: no header");
  *header = SplitCsv(line);
  size_t no = 1;
  while (std::getline(in, line)) {
    ++no;
    if (Trim(line).empty()) continue;
    std::vector<std::string> c = SplitCsv(line);
    if (c.size() != header->size()) {
      return core::InvalidArgument(path + ":" + std::to_string(no) + ": " +
                                   std::to_string(c.size()) + " cells, the header has " +
                                   std::to_string(header->size()));
    }
    cells->push_back(std::move(c));
  }
  return core::Status::Ok();
}

core::Status ParseFloat(const std::string& s, const std::string& where, float* out) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    return core::InvalidArgument(where + ": \"" + s + "\" is not a finite number");
  }
  *out = static_cast<float>(v);
  return core::Status::Ok();
}

// The signal columns of a BATADAL file (every column but DATETIME and ATT_FLAG), in `columns`
// order when given (so that dataset04 lines up with dataset03), else in file order.
core::Status ReadBatadal(const std::string& path, std::vector<std::string>* columns,
                         Matrix* rows) {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> cells;
  VIGIL_RETURN_IF_ERROR(ReadCsv(path, &header, &cells));
  if (columns->empty()) {
    for (const std::string& h : header) {
      if (h != "DATETIME" && h != "ATT_FLAG") columns->push_back(h);
    }
  }
  std::vector<size_t> at;
  for (const std::string& c : *columns) {
    const auto it = std::find(header.begin(), header.end(), c);
    if (it == header.end()) return core::InvalidArgument(path + ":1: no column " + c);
    at.push_back(static_cast<size_t>(it - header.begin()));
  }
  for (size_t r = 0; r < cells.size(); ++r) {
    std::vector<float> row(at.size());
    for (size_t i = 0; i < at.size(); ++i) {
      VIGIL_RETURN_IF_ERROR(ParseFloat(cells[r][at[i]],
                                       path + ":" + std::to_string(r + 2) + ":" + (*columns)[i],
                                       &row[i]));
    }
    rows->push_back(std::move(row));
  }
  return core::Status::Ok();
}

core::Result<Problem> LoadBatadal(const std::string& dir) {
  Problem p;
  p.name = "batadal";
  std::vector<std::string> columns;
  VIGIL_RETURN_IF_ERROR(ReadBatadal(dir + "/BATADAL_dataset03.csv", &columns, &p.train));
  VIGIL_RETURN_IF_ERROR(ReadBatadal(dir + "/BATADAL_dataset04.csv", &columns, &p.test));
  const std::string labels = dir + "/BATADAL_dataset04_full_labels.csv";
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> cells;
  VIGIL_RETURN_IF_ERROR(ReadCsv(labels, &header, &cells));
  const auto flag = std::find(header.begin(), header.end(), "ATT_FLAG");
  if (flag == header.end()) return core::InvalidArgument(labels + ":1: no ATT_FLAG column");
  if (cells.size() != p.test.size()) {
    return core::InvalidArgument(labels + ": " + std::to_string(cells.size()) +
                                 " rows, BATADAL_dataset04.csv has " +
                                 std::to_string(p.test.size()));
  }
  for (size_t r = 0; r < cells.size(); ++r) {
    const std::string& v = cells[r][static_cast<size_t>(flag - header.begin())];
    if (v != "0" && v != "1") {
      return core::InvalidArgument(labels + ":" + std::to_string(r + 2) + ": ATT_FLAG \"" + v +
                                   "\" is not 0 or 1");
    }
    p.labels.push_back(v == "1");
  }
  return p;
}

core::Result<std::vector<std::vector<int32_t>>> ReadSplit(const std::string& root,
                                                          sensor::AdfaSplit split) {
  auto list = sensor::ListAdfaTraces(root, split);
  if (!list.has_value()) return list.error();
  std::vector<std::vector<int32_t>> out;
  for (const sensor::AdfaTrace& t : *list) {
    auto s = sensor::ReadAdfaTrace(t.path);
    if (!s.has_value()) return s.error();
    out.push_back(std::move(s).value());
  }
  return out;
}

core::Result<Problem> LoadAdfa(const std::string& root) {
  auto train = ReadSplit(root, sensor::AdfaSplit::kTraining);
  if (!train.has_value()) return train.error();
  auto normal = ReadSplit(root, sensor::AdfaSplit::kValidation);
  if (!normal.has_value()) return normal.error();
  auto attack = ReadSplit(root, sensor::AdfaSplit::kAttack);
  if (!attack.has_value()) return attack.error();
  auto vocab = model::SyscallVocabulary::Create(
      model::SyscallVocabulary::CollectNames(core::Arch::kI386, *train));
  if (!vocab.has_value()) return vocab.error();
  auto counts = [&](const std::vector<int32_t>& t) {
    model::SyscallBag bag(*vocab);
    bag.AddAll(core::Arch::kI386, t);
    return std::vector<float>(bag.counts().begin(), bag.counts().end());
  };
  Problem p;
  p.name = "adfa-ld";
  for (const auto& t : *train) p.train.push_back(counts(t));
  for (const auto& t : *normal) {
    p.test.push_back(counts(t));
    p.labels.push_back(false);
  }
  for (const auto& t : *attack) {
    p.test.push_back(counts(t));
    p.labels.push_back(true);
  }
  return p;
}

core::Status WriteMatrix(const std::string& path, const Matrix& m) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return core::ErrnoError(errno, path);
  for (const auto& row : m) {
    for (size_t i = 0; i < row.size(); ++i) std::fprintf(f, i ? ",%.9g" : "%.9g", row[i]);
    std::fputc('\n', f);
  }
  if (std::fclose(f) != 0) return core::ErrnoError(errno, path);
  return core::Status::Ok();
}

core::Status WriteLabels(const std::string& path, const std::vector<bool>& labels) {
  Matrix m;
  for (bool l : labels) m.push_back({l ? 1.0f : 0.0f});
  return WriteMatrix(path, m);
}

// CPU seconds of this (single-threaded) process: less sensitive than wall time to other load on
// a shared machine; the Python side uses time.process_time() likewise.
double CpuNow() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

nlohmann::json Measure(const Problem& p, int seeds, int repeats) {
  nlohmann::json runs = nlohmann::json::array();
  for (int seed = 1; seed <= seeds; ++seed) {
    model::IsolationForestOptions o;
    o.seed = static_cast<uint64_t>(seed);
    o.calibration_fraction = 0.0;
    double start = CpuNow();
    auto f = model::IsolationForest::Train(p.train, o);
    const double train_s = CpuNow() - start;
    if (!f.has_value()) return {{"error", f.error().ToString()}};
    std::vector<model::Scored> scored(p.test.size());
    std::vector<double> batch(p.test.size()), secs, batch_secs;
    for (int r = 0; r < repeats; ++r) {
      start = CpuNow();
      for (size_t i = 0; i < p.test.size(); ++i) scored[i] = {f->Score(p.test[i]), p.labels[i]};
      secs.push_back(CpuNow() - start);
      start = CpuNow();
      f->ScoreBatch(p.test, batch);
      batch_secs.push_back(CpuNow() - start);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i] != scored[i].score) return {{"error", "ScoreBatch differs from Score"}};
    }
    std::sort(secs.begin(), secs.end());
    std::sort(batch_secs.begin(), batch_secs.end());
    runs.push_back({{"seed", seed},
                    {"auc", model::RocAuc(scored)},
                    {"train_seconds", train_s},
                    {"score_seconds", secs[secs.size() / 2]},
                    {"batch_seconds", batch_secs[batch_secs.size() / 2]}});
  }
  size_t positives = 0;
  for (bool l : p.labels) positives += l ? 1 : 0;
  return {{"dataset", p.name},
          {"features", p.train.empty() ? 0 : p.train[0].size()},
          {"train_rows", p.train.size()},
          {"test_rows", p.test.size()},
          {"test_attacks", positives},
          {"runs", runs}};
}

int Run(const std::string& out, const std::string& adfa, const std::string& batadal, int seeds,
        int repeats) {
  auto fail = [](const core::Status& s) {
    std::fprintf(stderr, "vigil_iforest: %s\n", s.ToString().c_str());
    return s.code() == core::StatusCode::kInvalidArgument ||
                   s.code() == core::StatusCode::kNotFound ||
                   s.code() == core::StatusCode::kDataLoss
               ? 2
               : 1;
  };
  nlohmann::json result;
  result["implementation"] = "vigil";
  result["datasets"] = nlohmann::json::array();
  std::vector<core::Result<Problem>> problems;
  problems.push_back(LoadAdfa(adfa));
  problems.push_back(LoadBatadal(batadal));
  for (auto& p : problems) {
    if (!p.has_value()) return fail(p.error());
    const std::string stem = out + "/" + (p->name == "adfa-ld" ? "adfa" : p->name);
    for (const auto& st : {WriteMatrix(stem + "_train.csv", p->train),
                           WriteMatrix(stem + "_test.csv", p->test),
                           WriteLabels(stem + "_labels.csv", p->labels)}) {
      if (!st.ok()) return fail(st);
    }
    nlohmann::json m = Measure(*p, seeds, repeats);
    if (m.contains("error")) {
      std::fprintf(stderr, "vigil_iforest: %s: %s\n", p->name.c_str(),
                   m["error"].get<std::string>().c_str());
      return 1;
    }
    result["datasets"].push_back(std::move(m));
  }
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) {
  CLI::App app("Vigil's side of bench/compare_sklearn: export the feature matrices, measure "
               "Vigil's isolation forest on them (JSON on stdout)");
  const std::string shared = std::string(VIGIL_SOURCE_DIR) + "/../shared/data";
  std::string out, adfa = shared + "/adfa-ld", batadal = shared + "/batadal";
  int seeds = 80, repeats = 3;
  app.add_option("--out", out, "Folder for the CSV matrices")->required();
  app.add_option("--adfa", adfa, "ADFA-LD root")->capture_default_str();
  app.add_option("--batadal", batadal, "BATADAL folder")->capture_default_str();
  app.add_option("--seeds", seeds, "Forests per dataset (seeds 1..N)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--repeats", repeats, "Timed scoring passes per forest (median)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  return vigil::bench::Run(out, adfa, batadal, seeds, repeats);
}
