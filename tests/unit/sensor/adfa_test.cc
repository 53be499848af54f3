#include "sensor/adfa.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sensor/replay.h"
#include "temp_dir.h"

namespace vigil::sensor {
namespace {

using core::StatusCode;
using testing::TempDir;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(ReadAdfaTraceTest, ParsesNumbersSeparatedByAnyWhitespace) {
  TempDir dir;
  const std::string path = dir.Write("t.txt", "  3 5\t6\n192  195 340 \n");
  auto r = ReadAdfaTrace(path);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(*r, (std::vector<int32_t>{3, 5, 6, 192, 195, 340}));
}

TEST(ReadAdfaTraceTest, EmptyFileIsAnEmptyTrace) {
  TempDir dir;
  auto r = ReadAdfaTrace(dir.Write("empty.txt", " \n"));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->empty());
}

TEST(ReadAdfaTraceTest, BadTokenNamesFileAndPosition) {
  TempDir dir;
  const std::string path = dir.Write("bad.txt", "3 5 x7 6");
  auto r = ReadAdfaTrace(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.error().message();
  EXPECT_TRUE(Contains(m, path)) << m;
  EXPECT_TRUE(Contains(m, "token 3")) << m;
  EXPECT_TRUE(Contains(m, "'x7'")) << m;
  EXPECT_TRUE(Contains(m, "not a system-call number")) << m;
}

TEST(ReadAdfaTraceTest, NegativeAndHugeNumbersAreRefused) {
  TempDir dir;
  for (const char* token : {"-3", "99999999999999999999", "3.5"}) {
    auto r = ReadAdfaTrace(dir.Write("n.txt", std::string("5 ") + token));
    ASSERT_FALSE(r.has_value()) << token;
    EXPECT_TRUE(Contains(r.error().message(), "token 2")) << r.error().ToString();
  }
}

TEST(ReadAdfaTraceTest, UnknownSyscallNumberNamesFileAndPosition) {
  TempDir dir;
  // 222 is a hole in the i386 table; 341 is past prlimit64, the last call of ADFA-LD's kernel.
  for (const char* token : {"222", "512", "100000"}) {
    const std::string path = dir.Write("u.txt", std::string("3 ") + token + " 5");
    auto r = ReadAdfaTrace(path);
    ASSERT_FALSE(r.has_value()) << token;
    const std::string& m = r.error().message();
    EXPECT_TRUE(Contains(m, path)) << m;
    EXPECT_TRUE(Contains(m, "token 2")) << m;
    EXPECT_TRUE(Contains(m, std::string("(") + token + ")")) << m;
    EXPECT_TRUE(Contains(m, "no i386 system call")) << m;
  }
}

TEST(ReadAdfaTraceTest, MissingFileIsNotFound) {
  TempDir dir;
  const std::string path = (dir.path() / "absent.txt").string();
  auto r = ReadAdfaTrace(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(r.error().message(), path));
}

class AdfaTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("Training_Data_Master/UTD-0002.txt", "3 5 6");
    dir_.Write("Training_Data_Master/UTD-0001.txt", "6 6");
    dir_.Write("Training_Data_Master/notes.md", "not a trace");
    dir_.Write("Attack_Data_Master/Java_Meterpreter_3/UAD-Java-Meterpreter-3-1.txt", "11 3");
    dir_.Write("Attack_Data_Master/Adduser_10/UAD-Adduser-10-1.txt", "5");
    dir_.Write("Attack_Data_Master/Web_Shell_1/UAD-WS1-2.txt", "5 5");
    dir_.Write("Attack_Data_Master/Web_Shell_1/UAD-WS1-1.txt", "5 6");
    dir_.Write("Attack_Data_Master/Odd_/x.txt", "5");
    std::filesystem::create_directories(dir_.path() / "Validation_Data_Master");
  }
  std::string root() const { return dir_.path().string(); }
  TempDir dir_;
};

TEST_F(AdfaTreeTest, ListsTxtFilesSortedById) {
  auto r = ListAdfaTraces(root(), AdfaSplit::kTraining);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].id, "Training_Data_Master/UTD-0001.txt");
  EXPECT_EQ((*r)[1].id, "Training_Data_Master/UTD-0002.txt");
  EXPECT_EQ((*r)[0].path, (dir_.path() / "Training_Data_Master/UTD-0001.txt").string());
  EXPECT_EQ((*r)[0].split, AdfaSplit::kTraining);
  EXPECT_EQ((*r)[0].attack_type, "");
}

TEST_F(AdfaTreeTest, AttackTypeDropsTheRunNumber) {
  auto r = ListAdfaTraces(root(), AdfaSplit::kAttack);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->size(), 5u);
  std::vector<std::string> types;
  for (const auto& t : *r) {
    EXPECT_EQ(t.split, AdfaSplit::kAttack);
    types.push_back(t.attack_type);
  }
  // Sorted by id: Adduser_10, Java_Meterpreter_3, Odd_, Web_Shell_1 (x2).
  EXPECT_EQ(types, (std::vector<std::string>{"Adduser", "Java_Meterpreter", "Odd_", "Web_Shell",
                                             "Web_Shell"}));
  EXPECT_EQ((*r)[3].id, "Attack_Data_Master/Web_Shell_1/UAD-WS1-1.txt");
}

TEST_F(AdfaTreeTest, EmptySplitIsInvalidArgument) {
  auto r = ListAdfaTraces(root(), AdfaSplit::kValidation);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r.error().message(), "Validation_Data_Master")) << r.error().ToString();
}

TEST(AdfaListTest, MissingSplitIsNotFound) {
  TempDir dir;
  auto r = ListAdfaTraces(dir.path().string(), AdfaSplit::kTraining);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(r.error().message(), "Training_Data_Master")) << r.error().ToString();
}

TEST_F(AdfaTreeTest, ListAdfaSplitsConcatenatesInOrder) {
  auto all = ListAdfaSplits(root(), "attack");
  ASSERT_TRUE(all.has_value()) << all.error().ToString();
  EXPECT_EQ(all->size(), 5u);
  auto bad = ListAdfaSplits(root(), "everything");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(Contains(bad.error().message(), "\"everything\""));
  // "eval" includes the empty validation split, which is an error.
  EXPECT_FALSE(ListAdfaSplits(root(), "eval").has_value());
}

}  // namespace
}  // namespace vigil::sensor
