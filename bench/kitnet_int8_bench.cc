// The kitnet family's int8 scoring path against float, in one run: trains KitNetModel on
// ADFA-LD's Training_Data_Master, turns every evaluation trace (Validation_Data_Master as
// normal, Attack_Data_Master as attacks) into its feature row once, then scores all rows with
// the float network and with the same network loaded with KitNetPrecision::kInt8. Prints AUC
// and detection at 1 % / 5 % false alarms of each, and the scoring time of each as the median
// of --repeats passes over all rows (one thread, CPU time of the thread), with the int8/float
// speed ratio; the int8 path
// is timed with the portable kernel and, where the CPU has AVX2, with the AVX2 kernel (which
// must give the same score on every row: the exit status is 1 if any differs).
//
//   build/release/bench/kitnet_int8_bench [--epochs N --bigrams B ...]   (--help for all)
//
// The dataset is $VIGIL_DATA or <source>/../shared/data/adfa-ld. Feature extraction is not
// timed: it is the same for both paths.
//
// With --batadal DIR it then does the same on BATADAL: a network trained (KitNetOptions'
// defaults, as the gateway's autoencoder) on every signal of BATADAL_dataset03.csv scores each
// hour of BATADAL_dataset04.csv, labelled by BATADAL_dataset04_full_labels.csv.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/bench_data.h"
#include "model/evaluation.h"
#include "model/kitnet_model.h"
#include "sensor/batadal.h"

namespace vigil::bench {
namespace {

struct Figures {
  double auc = 0, tpr1 = 0, tpr5 = 0;
};

Figures Measure(const model::KitNet& net, const std::vector<std::vector<float>>& rows,
                const std::vector<bool>& attack) {
  std::vector<model::Scored> s;
  model::KitNet::Workspace ws;
  for (size_t i = 0; i < rows.size(); ++i) s.push_back({net.Score(rows[i], ws), attack[i]});
  return {model::RocAuc(s), model::TprAtFpr(s, 0.01), model::TprAtFpr(s, 0.05)};
}

// CPU seconds of this thread: on a machine shared with other work, wall time would count the
// time other processes held the core.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Median CPU seconds (this thread) of `repeats` passes scoring every row.
double TimeScoring(const model::KitNet& net, const std::vector<std::vector<float>>& rows,
                   int repeats) {
  std::vector<double> secs;
  model::KitNet::Workspace ws;
  double sink = 0;
  for (int r = 0; r < repeats; ++r) {
    const double start = ThreadCpuSeconds();
    for (const auto& row : rows) sink += net.Score(row, ws);
    secs.push_back(ThreadCpuSeconds() - start);
  }
  if (sink == -1.0) std::printf("impossible\n");  // keeps the loop from being optimised away
  std::sort(secs.begin(), secs.end());
  return secs[secs.size() / 2];
}

// Scores `rows` with the float network and its int8 copy `q`; prints both paths' figures
// under `title`. Returns false when the AVX2 and portable kernels disagree on a row.
bool Compare(const std::string& title, const model::KitNet& net, const model::KitNet& q,
             const std::vector<std::vector<float>>& rows, const std::vector<bool>& attack,
             int repeats) {
  const model::Int8Kernel best = model::ActiveInt8Kernel();
  const bool have_avx2 = best == model::Int8Kernel::kAvx2;
  const Figures f = Measure(net, rows, attack);
  const Figures i8 = Measure(q, rows, attack);
  // The kernels must agree exactly (integer sums): checked on every row.
  size_t differ = 0;
  if (have_avx2) {
    model::KitNet::Workspace ws;
    std::vector<double> fast;
    for (const auto& row : rows) fast.push_back(q.Score(row, ws));
    (void)model::SelectInt8Kernel(model::Int8Kernel::kScalar);
    for (size_t r = 0; r < rows.size(); ++r) differ += q.Score(rows[r], ws) != fast[r] ? 1 : 0;
    (void)model::SelectInt8Kernel(best);
  }
  // Float, int8 with the portable kernel, int8 with AVX2: one pass each in turn, `repeats` times,
  // so that load on the machine falls on all three alike; the median of each.
  std::vector<double> sf, ss, sa;
  for (int r = 0; r < repeats; ++r) {
    sf.push_back(TimeScoring(net, rows, 1));
    (void)model::SelectInt8Kernel(model::Int8Kernel::kScalar);
    ss.push_back(TimeScoring(q, rows, 1));
    if (have_avx2) {
      (void)model::SelectInt8Kernel(model::Int8Kernel::kAvx2);
      sa.push_back(TimeScoring(q, rows, 1));
    }
  }
  (void)model::SelectInt8Kernel(best);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  const double tf = median(sf);
  const double ts = median(ss);
  const double ti = have_avx2 ? median(sa) : ts;
  size_t attacks = 0;
  for (bool a : attack) attacks += a ? 1 : 0;
  std::printf("%s: %zu features in %zu groups\n", title.c_str(), net.dims(), net.groups().size());
  std::printf("  evaluation rows: %zu (%zu normal, %zu attack); timing: thread CPU time, "
              "median of %d passes\n",
              rows.size(), rows.size() - attacks, attacks, repeats);
  std::printf("  %-6s %8s %8s %8s %14s %12s\n", "path", "AUC", "TPR@1%", "TPR@5%", "rows/s",
              "us/row");
  const auto n = static_cast<double>(rows.size());
  std::printf("  %-6s %8.4f %7.1f%% %7.1f%% %14.0f %12.3f\n", "float", f.auc, f.tpr1 * 100,
              f.tpr5 * 100, n / tf, tf / n * 1e6);
  std::printf("  %-6s %8.4f %7.1f%% %7.1f%% %14.0f %12.3f  (portable kernel)\n", "int8",
              i8.auc, i8.tpr1 * 100, i8.tpr5 * 100, n / ts, ts / n * 1e6);
  if (have_avx2) {
    std::printf("  %-6s %8.4f %7.1f%% %7.1f%% %14.0f %12.3f  (AVX2 kernel; %zu rows scored "
                "differently from the portable kernel)\n",
                "int8", i8.auc, i8.tpr1 * 100, i8.tpr5 * 100, n / ti, ti / n * 1e6, differ);
  } else {
    std::printf("  (no AVX2 on this CPU: the portable kernel is the one in use)\n");
  }
  std::printf("  int8 vs float: AUC %+.4f, speed x%.2f (portable x%.2f), same run\n",
              i8.auc - f.auc, tf / ti, tf / ts);
  return differ == 0;
}

// The float network's file loaded back for int8 scoring.
core::Result<model::KitNet> Int8Copy(const model::ModelFile& f) {
  auto file = model::DecodeModelFile(model::EncodeModelFile(f), "bench");
  if (!file.has_value()) return file.error();
  return model::KitNet::FromFile(*file, "bench", model::KitNetPrecision::kInt8);
}

// BATADAL: train on dataset03's signals, score dataset04's hours against their labels.
int RunBatadal(const std::string& dir, int repeats) {
  auto train = sensor::ReadBatadalTable(dir + "/" + std::string(sensor::kBatadalTraining));
  auto test = train.has_value()
                  ? sensor::ReadBatadalTable(dir + "/" + std::string(sensor::kBatadalDataset04))
                  : core::Result<sensor::BatadalTable>(train.error());
  auto labels =
      test.has_value()
          ? sensor::ReadBatadalLabels(dir + "/" + std::string(sensor::kBatadalDataset04Labels))
          : core::Result<sensor::BatadalLabels>(test.error());
  core::Status ok = labels.has_value() ? sensor::CheckLabelsMatch(*test, *labels) : labels.error();
  std::vector<int> cols;
  if (ok.ok()) {
    for (const std::string& s : train->signals) {
      cols.push_back(test->IndexOf(s));
      if (cols.back() < 0) ok = core::InvalidArgument(test->source + " has no column " + s);
    }
  }
  if (!ok.ok()) {
    std::fprintf(stderr, "kitnet_int8_bench: batadal: %s\n", ok.ToString().c_str());
    return 2;
  }
  std::vector<std::vector<float>> train_rows(train->rows()), rows(test->rows());
  for (size_t r = 0; r < train->rows(); ++r) {
    for (size_t c = 0; c < train->cols(); ++c) {
      train_rows[r].push_back(static_cast<float>(train->row(r)[c]));
    }
  }
  std::vector<bool> attack;
  for (size_t r = 0; r < test->rows(); ++r) {
    for (int c : cols) rows[r].push_back(static_cast<float>(test->row(r)[c]));
    attack.push_back(labels->attack[r] != 0);
  }
  model::KitNetOptions o;
  o.feature_names = train->signals;
  auto net = model::KitNet::Train(train_rows, o);
  auto q = net.has_value() ? Int8Copy(net->ToFile({})) : core::Result<model::KitNet>(net.error());
  if (!q.has_value()) {
    std::fprintf(stderr, "kitnet_int8_bench: batadal: %s\n", q.error().ToString().c_str());
    return 1;
  }
  return Compare("kitnet on BATADAL (trained on dataset03, scored on dataset04)", *net, *q, rows,
                 attack, repeats)
             ? 0
             : 1;
}

int Run(const model::KitNetModelOptions& o, int repeats, const std::string& batadal) {
  std::string error;
  const Dataset* d = GetDataset(&error);
  if (d == nullptr) {
    std::fprintf(stderr, "kitnet_int8_bench: %s\n", error.c_str());
    return 2;
  }
  std::vector<model::TrainingTrace> traces;
  for (const LoadedTrace& t : d->training) {
    traces.push_back({"", core::Arch::kI386, t.syscalls});
  }
  const auto start = std::chrono::steady_clock::now();
  auto m = model::KitNetModel::Train(traces, o);
  if (!m.has_value()) {
    std::fprintf(stderr, "kitnet_int8_bench: training: %s\n", m.error().ToString().c_str());
    return 1;
  }
  const double train_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const model::KitNet& net = (*m)->net();
  auto q = Int8Copy((*m)->ToFile({}));
  if (!q.has_value()) {
    std::fprintf(stderr, "kitnet_int8_bench: reload: %s\n", q.error().ToString().c_str());
    return 1;
  }
  std::vector<std::vector<float>> rows;
  std::vector<bool> attack;
  for (const LoadedTrace& t : d->validation) {
    rows.push_back((*m)->space().Row(core::Arch::kI386, t.syscalls));
    attack.push_back(false);
  }
  for (const LoadedTrace& t : d->attack) {
    rows.push_back((*m)->space().Row(core::Arch::kI386, t.syscalls));
    attack.push_back(true);
  }
  char title[160];
  std::snprintf(title, sizeof title, "kitnet on ADFA-LD (trained on %zu traces in %.2f s)",
                traces.size(), train_s);
  const bool agree = Compare(title, net, *q, rows, attack, repeats);
  const int b = batadal.empty() ? 0 : RunBatadal(batadal, repeats);
  return !agree ? 1 : b;
}

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) {
  CLI::App app("kitnet int8 vs float scoring on ADFA-LD (AUC loss and speed gain)");
  vigil::model::KitNetModelOptions o;
  o.net.epochs = 20;
  int repeats = 7;
  std::string batadal;
  app.add_option("--epochs", o.net.epochs, "Training passes")->capture_default_str();
  app.add_option("--learning-rate", o.net.learning_rate, "SGD step")->capture_default_str();
  app.add_option("--group-size", o.net.max_group_size, "Max features per autoencoder")
      ->capture_default_str();
  app.add_option("--hidden-ratio", o.net.hidden_ratio, "Hidden units per visible unit")
      ->capture_default_str();
  app.add_option("--bigrams", o.bigrams, "Call pairs among the features")->capture_default_str();
  app.add_option("--seed", o.net.seed, "Training seed")->capture_default_str();
  app.add_option("--repeats", repeats, "Timed passes (median)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--batadal", batadal,
                 "Also compare on BATADAL: the folder of BATADAL_dataset03.csv, "
                 "BATADAL_dataset04.csv and BATADAL_dataset04_full_labels.csv");
  CLI11_PARSE(app, argc, argv);
  return vigil::bench::Run(o, repeats, batadal);
}
