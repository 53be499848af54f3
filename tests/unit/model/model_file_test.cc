#include "model/model_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "model/internal/bytes.h"

namespace vigil::model {
namespace {

using core::StatusCode;
constexpr size_t kDigestLen = 32;

ModelFile SmallFile() {
  ModelFile f;
  f.header = {{"family", "test-family"}, {"name", "small"}, {"version", "3"}, {"extra", {1, 2}}};
  f.payload = std::string("\x00\x01\x02payload\xff", 11);
  return f;
}

std::string HexToBytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Replaces the trailing SHA-256 so that only the deliberate change is wrong.
std::string Reseal(std::string bytes) {
  bytes.resize(bytes.size() - kDigestLen);
  return bytes + HexToBytes(Sha256Hex(bytes));
}

// A container assembled by hand: any magic, version and header text.
std::string Container(std::string_view magic, uint32_t version, std::string_view header,
                      std::string_view payload) {
  internal::ByteWriter w;
  w.Bytes(magic);
  w.U32(version);
  w.U32(static_cast<uint32_t>(header.size()));
  w.Bytes(header);
  w.U64(payload.size());
  w.Bytes(payload);
  return Reseal(w.str() + std::string(kDigestLen, '\0'));
}

void SetU32(std::string* bytes, size_t offset, uint32_t v) {
  std::memcpy(bytes->data() + offset, &v, sizeof v);
}

TEST(ModelFileTest, RoundTrips) {
  const ModelFile f = SmallFile();
  const std::string bytes = EncodeModelFile(f);
  EXPECT_EQ(bytes.substr(0, 8), "VIGILMDL");
  auto back = DecodeModelFile(bytes, "small.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->payload, f.payload);
  EXPECT_EQ(back->header["family"], "test-family");
  EXPECT_EQ(back->header["extra"], nlohmann::json({1, 2}));
  EXPECT_EQ(back->header["format"], "vigil-model");
  EXPECT_EQ(back->header["format_version"], kModelFormatVersion);
  EXPECT_EQ(EncodeModelFile(*back), bytes);  // encoding is deterministic
}

TEST(ModelFileTest, EmptyPayloadRoundTrips) {
  ModelFile f = SmallFile();
  f.payload.clear();
  auto back = DecodeModelFile(EncodeModelFile(f), "empty");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_TRUE(back->payload.empty());
}

TEST(ModelFileTest, EveryFlippedByteIsRefused) {
  const std::string good = EncodeModelFile(SmallFile());
  const size_t header_len = good.size() - 16 - 8 - SmallFile().payload.size() - kDigestLen;
  const size_t payload_len_at = 16 + header_len;
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      auto r = DecodeModelFile(bad, "flip.vmdl");
      ASSERT_FALSE(r.has_value()) << "byte " << i << " mask " << int{mask} << " was accepted";
      const core::Status& s = r.error();
      EXPECT_TRUE(s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kInvalidArgument ||
                  s.code() == StatusCode::kOutOfRange)
          << s.ToString();
      EXPECT_EQ(s.message().rfind("flip.vmdl: ", 0), 0u) << s.ToString();
      if (i >= 16 && (i < payload_len_at || i >= payload_len_at + 8)) {
        // Outside magic, version and the two lengths only the checksum can catch a flip.
        EXPECT_NE(s.message().find("checksum"), std::string::npos)
            << "byte " << i << ": " << s.ToString();
      }
    }
  }
}

TEST(ModelFileTest, EveryTruncationIsRefused) {
  const std::string good = EncodeModelFile(SmallFile());
  for (size_t len = 0; len < good.size(); ++len) {
    auto r = DecodeModelFile(std::string_view(good).substr(0, len), "cut.vmdl");
    ASSERT_FALSE(r.has_value()) << "length " << len << " was accepted";
    EXPECT_FALSE(r.error().message().empty());
    EXPECT_EQ(r.error().message().rfind("cut.vmdl: ", 0), 0u) << r.error().ToString();
    if (len >= 8) {
      EXPECT_EQ(r.error().code(), StatusCode::kDataLoss) << r.error().ToString();
    }
  }
}

TEST(ModelFileTest, NewerFormatVersionIsOutOfRange) {
  std::string bytes = EncodeModelFile(SmallFile());
  SetU32(&bytes, 8, kModelFormatVersion + 1);
  auto r = DecodeModelFile(Reseal(bytes), "future.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kOutOfRange);
  EXPECT_NE(r.error().message().find("newer"), std::string::npos) << r.error().ToString();
  EXPECT_NE(r.error().message().find("future.vmdl"), std::string::npos);
}

TEST(ModelFileTest, VersionZeroIsRefused) {
  std::string bytes = EncodeModelFile(SmallFile());
  SetU32(&bytes, 8, 0);
  auto r = DecodeModelFile(Reseal(bytes), "zero.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.error().message().find("version 0"), std::string::npos) << r.error().ToString();
}

TEST(ModelFileTest, WrongMagicIsNotAModelFile) {
  std::string bytes = EncodeModelFile(SmallFile());
  bytes.replace(0, 8, "VIGILMDX");
  auto r = DecodeModelFile(Reseal(bytes), "other.bin");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("not a Vigil model file"), std::string::npos);
}

TEST(ModelFileTest, TrailingBytesAreRefused) {
  const std::string bytes = EncodeModelFile(SmallFile()) + "x";
  auto r = DecodeModelFile(bytes, "long.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.error().message().find("payload length"), std::string::npos) << r.error().ToString();
}

TEST(ModelFileTest, HeaderLengthPastTheEndIsRefused) {
  std::string bytes = EncodeModelFile(SmallFile());
  SetU32(&bytes, 12, 0xfffffff0u);
  auto r = DecodeModelFile(Reseal(bytes), "hdr.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("header length"), std::string::npos) << r.error().ToString();
}

TEST(ModelFileTest, HandBuiltContainerIsAccepted) {
  auto r = DecodeModelFile(
      Container("VIGILMDL", 1, R"({"family":"f","name":"n","version":"v"})", "abc"), "hand");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->payload, "abc");
}

TEST(ModelFileTest, HeaderMustBeAnObjectWithStringKeys) {
  struct Case {
    const char* header;
    const char* want;
  };
  for (const Case& c : {
           Case{"[1,2]", "not a JSON object"},
           Case{"{not json", "not a JSON object"},
           Case{R"({"name":"n","version":"v"})", "\"family\""},
           Case{R"({"family":"f","version":"v"})", "\"name\""},
           Case{R"({"family":"f","name":"n","version":3})", "\"version\""},
       }) {
    auto r = DecodeModelFile(Container("VIGILMDL", 1, c.header, ""), "hdr.vmdl");
    ASSERT_FALSE(r.has_value()) << c.header;
    EXPECT_EQ(r.error().code(), StatusCode::kDataLoss);
    EXPECT_NE(r.error().message().find(c.want), std::string::npos) << r.error().ToString();
  }
}

class ModelFileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil-model-file-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(ModelFileIoTest, WriteThenReadRoundTripsAndCreatesFolders) {
  const std::string path = (dir_ / "sub" / "m.vmdl").string();
  ASSERT_TRUE(WriteModelFile(path, SmallFile()).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto r = ReadModelFile(path);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->payload, SmallFile().payload);
  // Overwriting replaces the file whole.
  ModelFile other = SmallFile();
  other.payload = "second";
  ASSERT_TRUE(WriteModelFile(path, other).ok());
  EXPECT_EQ(ReadModelFile(path)->payload, "second");
}

TEST_F(ModelFileIoTest, MissingFileIsNotFound) {
  const std::string path = (dir_ / "absent.vmdl").string();
  auto r = ReadModelFile(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_NE(r.error().message().find(path), std::string::npos);
}

TEST(Sha256HexTest, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace vigil::model
