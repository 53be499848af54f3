#include "sensor/batadal.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil::sensor {
namespace {

constexpr char kGood[] =
    "DATETIME,L_T1,S_PU1,ATT_FLAG\n"
    "06/01/14 00,0.5,1,0\n"
    "06/01/14 01, 0.25 , 0 ,-999\r\n"
    "06/01/14 02,1e-1,1,1\n";

// The error message of parsing `text` as a data table named "t.csv"; "" when it parses.
std::string TableError(const std::string& text) {
  auto t = ParseBatadalTable(text, "t.csv");
  if (t.has_value()) return "";
  EXPECT_EQ(t.error().code(), core::StatusCode::kInvalidArgument);
  return t.error().message();
}

std::string LabelError(const std::string& text) {
  auto l = ParseBatadalLabels(text, "l.csv");
  if (l.has_value()) return "";
  EXPECT_EQ(l.error().code(), core::StatusCode::kInvalidArgument);
  return l.error().message();
}

TEST(BatadalCsvTest, ParsesPaddedValuesFlagsAndHours) {
  auto t = ParseBatadalTable(kGood, "t.csv");
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  EXPECT_EQ(t->signals, (std::vector<std::string>{"L_T1", "S_PU1"}));
  ASSERT_EQ(t->rows(), 3u);
  EXPECT_DOUBLE_EQ(t->row(1)[0], 0.25);
  EXPECT_DOUBLE_EQ(t->row(2)[0], 0.1);
  EXPECT_EQ(t->att_flag, (std::vector<int>{0, kBatadalUnlabelled, 1}));
  EXPECT_EQ(t->hours[1], t->hours[0] + 1);
  EXPECT_EQ(FormatBatadalHour(t->hours[0]), "06/01/14 00");
  EXPECT_EQ(t->IndexOf("S_PU1"), 1);
  EXPECT_EQ(t->IndexOf("nope"), -1);
}

TEST(BatadalCsvTest, TableWithoutAttFlagHasNoFlags) {
  auto t = ParseBatadalTable("DATETIME,A\n31/12/16 23,1\n01/01/17 00,2\n", "t.csv");
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  EXPECT_TRUE(t->att_flag.empty());
  EXPECT_EQ(FormatBatadalHour(t->hours[1]), "01/01/17 00");
}

TEST(BatadalCsvTest, ErrorsNameFileLineAndColumn) {
  const std::string head = "DATETIME,L_T1,S_PU1,ATT_FLAG\n06/01/14 00,0.5,1,0\n";
  // A value that is not a number: line 3, its field starts at byte 13.
  EXPECT_EQ(TableError(head + "06/01/14 01,abc,1,0\n"),
            "t.csv:3:13: field 2 (L_T1): \"abc\" is not a finite number");
  EXPECT_EQ(TableError(head + "06/01/14 01,,1,0\n"),
            "t.csv:3:13: field 2 (L_T1): \"\" is not a finite number");
  EXPECT_EQ(TableError(head + "06/01/14 01,nan,1,0\n").substr(0, 11), "t.csv:3:13:");
  EXPECT_EQ(TableError(head + "06/01/14 01,1,1e999,0\n").substr(0, 11), "t.csv:3:15:");
  // Too few fields: the column just past the end of the line.
  EXPECT_EQ(TableError(head + "06/01/14 01,1,1\n"),
            "t.csv:3:16: expected 4 comma-separated fields, found 3");
  // Too many: the first extra field.
  EXPECT_EQ(TableError(head + "06/01/14 01,1,1,0,9\n").substr(0, 11), "t.csv:3:19:");
  EXPECT_EQ(TableError(head + "32/01/14 01,1,1,0\n"),
            "t.csv:3:1: DATETIME \"32/01/14 01\" is not a date \"dd/mm/yy HH\"");
  EXPECT_EQ(TableError(head + "29/02/14 01,1,1,0\n").substr(0, 10), "t.csv:3:1:");
  EXPECT_EQ(TableError(head + "06/01/14 03,1,1,0\n"),
            "t.csv:3:1: DATETIME 06/01/14 03 is not one hour after the previous row's 06/01/14 00 "
            "(rows must be consecutive hours)");
  EXPECT_EQ(TableError(head + "06/01/14 01,1,1,2\n"),
            "t.csv:3:17: ATT_FLAG \"2\" is not 0, 1 or -999");
  // Blank lines are skipped but counted.
  EXPECT_EQ(TableError(head + "\n06/01/14 01,x,1,0\n").substr(0, 11), "t.csv:4:13:");
}

TEST(BatadalCsvTest, HeaderErrors) {
  EXPECT_EQ(TableError(""), "t.csv: empty file (expected a CSV header)");
  EXPECT_EQ(TableError("TIME,A\n"), "t.csv:1:1: first column is \"TIME\", expected DATETIME");
  EXPECT_EQ(TableError("DATETIME,A,A\n"), "t.csv:1:12: column \"A\" appears twice");
  EXPECT_EQ(TableError("DATETIME,ATT_FLAG\n"), "t.csv:1:10: header names no signal column");
  EXPECT_EQ(TableError("DATETIME,A,,B\n"), "t.csv:1:12: empty column name");
  EXPECT_EQ(TableError("DATETIME,A\n"), "t.csv: no data rows after the header");
  EXPECT_EQ(TableError("DATETIME,A\n06/01/14 00,\x01\n").substr(0, 26),
            "t.csv:2:13: field 2 (A): \"");
}

TEST(BatadalCsvTest, LabelsWithAttackIds) {
  auto l = ParseBatadalLabels(
      "DATETIME,ATT_FLAG,ATTACK_ID\n"
      "01/01/17 00,0,0\n01/01/17 01,1,4\n01/01/17 02,1,4\n01/01/17 03,0,0\n",
      "l.csv");
  ASSERT_TRUE(l.has_value()) << l.error().ToString();
  EXPECT_EQ(l->attack, (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(l->attack_id, (std::vector<int>{0, 4, 4, 0}));
}

TEST(BatadalCsvTest, LabelsWithoutIdsNumberTheRuns) {
  auto l = ParseBatadalLabels(
      "DATETIME,ATT_FLAG\n01/01/17 00,1\n01/01/17 01,0\n01/01/17 02,1\n01/01/17 03,1\n", "l.csv");
  ASSERT_TRUE(l.has_value()) << l.error().ToString();
  EXPECT_EQ(l->attack_id, (std::vector<int>{1, 0, 2, 2}));
}

TEST(BatadalCsvTest, LabelErrors) {
  const std::string head = "DATETIME,ATT_FLAG,ATTACK_ID\n01/01/17 00,1,1\n";
  EXPECT_EQ(LabelError(head + "01/01/17 01,1,0\n"),
            "l.csv:3:15: ATTACK_ID 0 contradicts ATT_FLAG 1 (0 exactly outside attacks)");
  EXPECT_EQ(LabelError(head + "01/01/17 01,0,0\n01/01/17 02,1,1\n"),
            "l.csv:4:15: attack 1 resumes after it ended");
  EXPECT_EQ(LabelError(head + "01/01/17 01,-999,0\n"),
            "l.csv:3:13: ATT_FLAG \"-999\" is not 0 or 1");
  EXPECT_EQ(LabelError(head + "01/01/17 01,1,x\n"),
            "l.csv:3:15: ATTACK_ID \"x\" is not a number in 0..1000");
  EXPECT_EQ(LabelError("DATETIME,FLAG\n"), "l.csv:1:10: column 2 is \"FLAG\", expected ATT_FLAG");
  EXPECT_EQ(LabelError("DATETIME\n"),
            "l.csv:1:1: header has 1 columns, expected DATETIME,ATT_FLAG[,ATTACK_ID]");
}

TEST(BatadalCsvTest, LabelsMustCoverTheTableHours) {
  auto t = ParseBatadalTable("DATETIME,A\n01/01/17 00,1\n01/01/17 01,2\n", "t.csv");
  ASSERT_TRUE(t.has_value());
  auto same = ParseBatadalLabels("DATETIME,ATT_FLAG\n01/01/17 00,0\n01/01/17 01,1\n", "l.csv");
  ASSERT_TRUE(same.has_value());
  EXPECT_TRUE(CheckLabelsMatch(*t, *same).ok());
  auto shifted = ParseBatadalLabels("DATETIME,ATT_FLAG\n01/01/17 01,0\n01/01/17 02,1\n", "l.csv");
  ASSERT_TRUE(shifted.has_value());
  EXPECT_EQ(CheckLabelsMatch(*t, *shifted).message(),
            "l.csv: label row 1 is for 01/01/17 01 but t.csv row 1 is 01/01/17 00");
  auto short_labels = ParseBatadalLabels("DATETIME,ATT_FLAG\n01/01/17 00,0\n", "l.csv");
  ASSERT_TRUE(short_labels.has_value());
  EXPECT_EQ(CheckLabelsMatch(*t, *short_labels).message(),
            "l.csv: 1 label rows, but t.csv has 2 rows");
}

TEST(BatadalCsvTest, ReadReportsAMissingFile) {
  auto t = ReadBatadalTable("/nonexistent/BATADAL_dataset03.csv");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code(), core::StatusCode::kNotFound);
  EXPECT_NE(t.error().message().find("/nonexistent/BATADAL_dataset03.csv"), std::string::npos);
}

}  // namespace
}  // namespace vigil::sensor
