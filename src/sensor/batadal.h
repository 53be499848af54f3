#pragma once

// The BATADAL data set on disk (Taormina et al. 2018, C-Town water network; hourly SCADA
// readings). Format facts: docs/batadal.md.
//
//   BATADAL_dataset03.csv              DATETIME, 43 signals, ATT_FLAG (all 0): normal operation
//   BATADAL_dataset04.csv              DATETIME, 43 signals, ATT_FLAG (1 or -999 = unknown)
//   BATADAL_dataset04_full_labels.csv  DATETIME, ATT_FLAG (0/1), ATTACK_ID (0 or 1..7)
//   BATADAL_test_dataset.csv           DATETIME, 43 signals (no ATT_FLAG)
//   BATADAL_test_labels.csv            DATETIME, ATT_FLAG[, ATTACK_ID]
//
// Every error names the file, the 1-based line and the 1-based column (in bytes) of the fault:
// "data.csv:12:37: field 5 (L_T4): "x" is not a number". Values may be padded with spaces.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::sensor {

inline constexpr std::string_view kBatadalTraining = "BATADAL_dataset03.csv";
inline constexpr std::string_view kBatadalDataset04 = "BATADAL_dataset04.csv";
inline constexpr std::string_view kBatadalDataset04Labels = "BATADAL_dataset04_full_labels.csv";
inline constexpr std::string_view kBatadalTest = "BATADAL_test_dataset.csv";
inline constexpr std::string_view kBatadalTestLabels = "BATADAL_test_labels.csv";

// ATT_FLAG value meaning "not labelled" in the published dataset04.
inline constexpr int kBatadalUnlabelled = -999;

// One hour of the network: signal values in the table's column order.
struct BatadalTable {
  std::string source;                // file name used in errors
  std::vector<std::string> signals;  // column names between DATETIME and ATT_FLAG
  std::vector<int64_t> hours;        // DATETIME as hours since 1970-01-01 00 (UTC, no DST)
  std::vector<double> values;        // rows() x signals().size(), row-major
  std::vector<int> att_flag;         // one per row when the file has ATT_FLAG, else empty

  size_t rows() const { return hours.size(); }
  size_t cols() const { return signals.size(); }
  const double* row(size_t r) const { return values.data() + r * signals.size(); }
  // Column index of `name`, or -1.
  int IndexOf(std::string_view name) const;
};

struct BatadalLabels {
  std::string source;
  std::vector<int64_t> hours;
  std::vector<uint8_t> attack;  // 1 during an attack
  // Attack number per hour (0 outside attacks). From ATTACK_ID when the file has it; otherwise
  // each maximal run of ATT_FLAG = 1 is numbered 1, 2, ... in order.
  std::vector<int> attack_id;
};

// Parses a data table. The header must start with DATETIME, name at least one signal, hold no
// name twice, and may end with ATT_FLAG (values -999, 0 or 1). Every row has the header's field
// count, a DATETIME "dd/mm/yy HH" exactly one hour after the previous row's, and finite decimal
// values. At least one row. `source` names the input in errors.
core::Result<BatadalTable> ParseBatadalTable(std::string_view text, std::string_view source);

// Parses a label file: header DATETIME,ATT_FLAG[,ATTACK_ID]; ATT_FLAG 0 or 1; ATTACK_ID 0 when
// ATT_FLAG is 0 and 1..1000 when it is 1, each attack one contiguous run of hours.
core::Result<BatadalLabels> ParseBatadalLabels(std::string_view text, std::string_view source);

// A BATADAL CSV is a few MB; anything past this is not one.
inline constexpr uint64_t kMaxBatadalFileBytes = uint64_t{256} << 20;

// Read and parse a file (kNotFound when it cannot be opened; errors name `path`).
core::Result<BatadalTable> ReadBatadalTable(const std::string& path);
core::Result<BatadalLabels> ReadBatadalLabels(const std::string& path);

// OK when `labels` covers exactly the hours of `table`, in order; otherwise kInvalidArgument
// naming both files, the row (1-based, header not counted) and the two hours that differ.
core::Status CheckLabelsMatch(const BatadalTable& table, const BatadalLabels& labels);

// "dd/mm/yy HH" of an hour count (the inverse of the DATETIME parse).
std::string FormatBatadalHour(int64_t hours);

}  // namespace vigil::sensor
