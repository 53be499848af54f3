#include "sensor/batadal.h"
#include "core/files.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_set>

namespace vigil::sensor {
namespace {

struct Field {
  std::string_view text;  // trimmed
  size_t column = 1;      // 1-based byte column of the field's first byte (before trimming)
};

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits one line (without its '\n') at commas. No quoting: BATADAL files have none.
std::vector<Field> SplitFields(std::string_view line) {
  std::vector<Field> out;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    const size_t end = comma == std::string_view::npos ? line.size() : comma;
    out.push_back({Trim(line.substr(start, end - start)), start + 1});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// Iterates over the lines of a text, numbering them from 1; skips nothing.
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {
    // A UTF-8 byte-order mark before the header is tolerated.
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);
  }
  bool Next(std::string_view* line, size_t* number) {
    if (pos_ >= text_.size()) return false;
    const size_t nl = text_.find('\n', pos_);
    const size_t end = nl == std::string_view::npos ? text_.size() : nl;
    *line = text_.substr(pos_, end - pos_);
    pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    *number = ++number_;
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  size_t number_ = 0;
};

core::Status Error(std::string_view source, size_t line, size_t column, const std::string& why) {
  return core::InvalidArgument(std::string(source) + ":" + std::to_string(line) + ":" +
                               std::to_string(column) + ": " + why);
}

std::string Quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "\"";
  for (char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

bool AllBlank(std::string_view line) { return Trim(line).empty(); }

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool TwoDigits(std::string_view s, size_t at, int* out) {
  if (at + 2 > s.size()) return false;
  const char a = s[at], b = s[at + 1];
  if (a < '0' || a > '9' || b < '0' || b > '9') return false;
  *out = (a - '0') * 10 + (b - '0');
  return true;
}

// "dd/mm/yy HH" -> hours since the epoch; years are 20yy.
bool ParseDateTime(std::string_view s, int64_t* hours) {
  int d = 0, m = 0, y = 0, h = 0;
  if (s.size() != 11 || s[2] != '/' || s[5] != '/' || s[8] != ' ') return false;
  if (!TwoDigits(s, 0, &d) || !TwoDigits(s, 3, &m) || !TwoDigits(s, 6, &y) ||
      !TwoDigits(s, 9, &h)) {
    return false;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int64_t year = 2000 + y;
  if (m < 1 || m > 12 || h > 23 || d < 1) return false;
  const int max_day = kDays[m - 1] + (m == 2 && IsLeap(year) ? 1 : 0);
  if (d > max_day) return false;
  *hours = DaysFromCivil(year, static_cast<unsigned>(m), static_cast<unsigned>(d)) * 24 + h;
  return true;
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  // from_chars rejects a leading '+'; accept it as the published files could have it.
  if (s.front() == '+') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

bool ParseInt(std::string_view s, int* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// The header line: the first line that is not blank. Fails when there is none.
core::Status ReadHeader(Lines& lines, std::string_view source, std::vector<Field>* header,
                        size_t* line_no) {
  std::string_view line;
  while (lines.Next(&line, line_no)) {
    if (AllBlank(line)) continue;
    *header = SplitFields(line);
    return core::Status::Ok();
  }
  return core::InvalidArgument(std::string(source) + ": empty file (expected a CSV header)");
}

core::Status CheckFieldCount(std::string_view source, size_t line_no, std::string_view line,
                             const std::vector<Field>& fields, size_t expected) {
  if (fields.size() == expected) return core::Status::Ok();
  const size_t column = fields.size() < expected ? line.size() + 1 : fields[expected].column;
  return Error(source, line_no, column,
               "expected " + std::to_string(expected) + " comma-separated fields, found " +
                   std::to_string(fields.size()));
}

core::Status ParseHour(std::string_view source, size_t line_no, const Field& f,
                       const std::vector<int64_t>& hours, int64_t* out) {
  if (!ParseDateTime(f.text, out)) {
    return Error(source, line_no, f.column,
                 "DATETIME " + Quote(f.text) + " is not a date \"dd/mm/yy HH\"");
  }
  if (!hours.empty() && *out != hours.back() + 1) {
    return Error(source, line_no, f.column,
                 "DATETIME " + std::string(f.text) + " is not one hour after the previous row's " +
                     FormatBatadalHour(hours.back()) + " (rows must be consecutive hours)");
  }
  return core::Status::Ok();
}

}  // namespace

int BatadalTable::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < signals.size(); ++i) {
    if (signals[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string FormatBatadalHour(int64_t hours) {
  // Inverse of DaysFromCivil (H. Hinnant's civil_from_days).
  int64_t days = hours >= 0 ? hours / 24 : (hours - 23) / 24;
  const int64_t hour = hours - days * 24;
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02u/%02u/%02lld %02lld", d, m,
                static_cast<long long>(((y % 100) + 100) % 100), static_cast<long long>(hour));
  return buf;
}

core::Result<BatadalTable> ParseBatadalTable(std::string_view text, std::string_view source) {
  Lines lines(text);
  std::vector<Field> header;
  size_t line_no = 0;
  VIGIL_RETURN_IF_ERROR(ReadHeader(lines, source, &header, &line_no));
  if (header[0].text != "DATETIME") {
    return Error(source, line_no, header[0].column,
                 "first column is " + Quote(header[0].text) + ", expected DATETIME");
  }
  BatadalTable t;
  t.source = std::string(source);
  const bool has_flag = header.size() > 1 && header.back().text == "ATT_FLAG";
  const size_t n_signals = header.size() - 1 - (has_flag ? 1 : 0);
  if (n_signals == 0) {
    return Error(source, line_no, header.back().column, "header names no signal column");
  }
  std::unordered_set<std::string_view> seen;
  for (size_t i = 1; i <= n_signals; ++i) {
    const Field& f = header[i];
    if (f.text.empty()) return Error(source, line_no, f.column, "empty column name");
    if (f.text == "DATETIME" || f.text == "ATT_FLAG") {
      return Error(source, line_no, f.column, "column " + std::string(f.text) + " out of place");
    }
    if (!seen.insert(f.text).second) {
      return Error(source, line_no, f.column, "column " + Quote(f.text) + " appears twice");
    }
    t.signals.emplace_back(f.text);
  }
  const size_t n_fields = header.size();
  std::string_view line;
  std::vector<Field> fields;
  while (lines.Next(&line, &line_no)) {
    if (AllBlank(line)) continue;
    fields = SplitFields(line);
    VIGIL_RETURN_IF_ERROR(CheckFieldCount(source, line_no, line, fields, n_fields));
    int64_t hour = 0;
    VIGIL_RETURN_IF_ERROR(ParseHour(source, line_no, fields[0], t.hours, &hour));
    for (size_t i = 1; i <= n_signals; ++i) {
      double v = 0;
      if (!ParseDouble(fields[i].text, &v)) {
        return Error(source, line_no, fields[i].column,
                     "field " + std::to_string(i + 1) + " (" + t.signals[i - 1] + "): " +
                         Quote(fields[i].text) + " is not a finite number");
      }
      t.values.push_back(v);
    }
    if (has_flag) {
      const Field& f = fields.back();
      int flag = 0;
      if (!ParseInt(f.text, &flag) || (flag != 0 && flag != 1 && flag != kBatadalUnlabelled)) {
        return Error(source, line_no, f.column,
                     "ATT_FLAG " + Quote(f.text) + " is not 0, 1 or -999");
      }
      t.att_flag.push_back(flag);
    }
    t.hours.push_back(hour);
  }
  if (t.hours.empty()) {
    return core::InvalidArgument(std::string(source) + ": no data rows after the header");
  }
  return t;
}

core::Result<BatadalLabels> ParseBatadalLabels(std::string_view text, std::string_view source) {
  Lines lines(text);
  std::vector<Field> header;
  size_t line_no = 0;
  VIGIL_RETURN_IF_ERROR(ReadHeader(lines, source, &header, &line_no));
  static constexpr std::string_view kNames[] = {"DATETIME", "ATT_FLAG", "ATTACK_ID"};
  if (header.size() < 2 || header.size() > 3) {
    return Error(source, line_no, 1,
                 "header has " + std::to_string(header.size()) +
                     " columns, expected DATETIME,ATT_FLAG[,ATTACK_ID]");
  }
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i].text != kNames[i]) {
      return Error(source, line_no, header[i].column,
                   "column " + std::to_string(i + 1) + " is " + Quote(header[i].text) +
                       ", expected " + std::string(kNames[i]));
    }
  }
  const bool has_id = header.size() == 3;
  BatadalLabels l;
  l.source = std::string(source);
  std::vector<uint8_t> closed;  // closed[id]: the run of attack `id` has ended
  int prev_id = 0;
  int runs = 0;
  std::string_view line;
  std::vector<Field> fields;
  while (lines.Next(&line, &line_no)) {
    if (AllBlank(line)) continue;
    fields = SplitFields(line);
    VIGIL_RETURN_IF_ERROR(CheckFieldCount(source, line_no, line, fields, header.size()));
    int64_t hour = 0;
    VIGIL_RETURN_IF_ERROR(ParseHour(source, line_no, fields[0], l.hours, &hour));
    int flag = 0;
    if (!ParseInt(fields[1].text, &flag) || (flag != 0 && flag != 1)) {
      return Error(source, line_no, fields[1].column,
                   "ATT_FLAG " + Quote(fields[1].text) + " is not 0 or 1");
    }
    int id = 0;
    if (has_id) {
      constexpr int kMaxId = 1000;
      const Field& f = fields[2];
      if (!ParseInt(f.text, &id) || id < 0 || id > kMaxId) {
        return Error(source, line_no, f.column,
                     "ATTACK_ID " + Quote(f.text) + " is not a number in 0..1000");
      }
      if ((id == 0) != (flag == 0)) {
        return Error(source, line_no, f.column,
                     "ATTACK_ID " + std::to_string(id) + " contradicts ATT_FLAG " +
                         std::to_string(flag) + " (0 exactly outside attacks)");
      }
      if (id != prev_id && id != 0) {
        if (static_cast<size_t>(id) < closed.size() && closed[id]) {
          return Error(source, line_no, f.column,
                       "attack " + std::to_string(id) + " resumes after it ended");
        }
      }
    } else if (flag == 1) {
      id = prev_id != 0 ? prev_id : ++runs;
    }
    if (prev_id != 0 && id != prev_id) {
      if (closed.size() <= static_cast<size_t>(prev_id)) closed.resize(prev_id + 1, 0);
      closed[prev_id] = 1;
    }
    prev_id = id;
    l.hours.push_back(hour);
    l.attack.push_back(static_cast<uint8_t>(flag));
    l.attack_id.push_back(id);
  }
  if (l.hours.empty()) {
    return core::InvalidArgument(std::string(source) + ": no label rows after the header");
  }
  return l;
}

core::Result<BatadalTable> ReadBatadalTable(const std::string& path) {
  auto text = core::ReadFile(path, kMaxBatadalFileBytes);
  if (!text.has_value()) return text.error();
  return ParseBatadalTable(*text, path);
}

core::Result<BatadalLabels> ReadBatadalLabels(const std::string& path) {
  auto text = core::ReadFile(path, kMaxBatadalFileBytes);
  if (!text.has_value()) return text.error();
  return ParseBatadalLabels(*text, path);
}

core::Status CheckLabelsMatch(const BatadalTable& table, const BatadalLabels& labels) {
  const size_t n = std::min(table.rows(), labels.hours.size());
  for (size_t i = 0; i < n; ++i) {
    if (table.hours[i] != labels.hours[i]) {
      return core::InvalidArgument(labels.source + ": label row " + std::to_string(i + 1) +
                                   " is for " + FormatBatadalHour(labels.hours[i]) + " but " +
                                   table.source + " row " + std::to_string(i + 1) + " is " +
                                   FormatBatadalHour(table.hours[i]));
    }
  }
  if (table.rows() != labels.hours.size()) {
    return core::InvalidArgument(labels.source + ": " + std::to_string(labels.hours.size()) +
                                 " label rows, but " + table.source + " has " +
                                 std::to_string(table.rows()) + " rows");
  }
  return core::Status::Ok();
}

}  // namespace vigil::sensor
