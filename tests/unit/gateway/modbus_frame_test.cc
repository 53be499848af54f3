#include "gateway/modbus_frame.h"

#include <gtest/gtest.h>

#include <vector>

namespace vigil::gateway {
namespace {

// An ADU with a correct MBAP header around `pdu` (function code first) for unit 1.
std::vector<uint8_t> Adu(std::vector<uint8_t> pdu, uint8_t unit = 1) {
  const size_t len = pdu.size() + 1;
  std::vector<uint8_t> a = {0x12, 0x34, 0, 0, static_cast<uint8_t>(len >> 8),
                            static_cast<uint8_t>(len & 0xFF), unit};
  for (uint8_t b : pdu) a.push_back(b);
  return a;
}

TEST(ModbusFrameTest, ReadsPassAsReads) {
  EXPECT_EQ(ParseRequest(Adu({3, 0, 10, 0, 2})).cls, FrameClass::kRead);
  EXPECT_EQ(ParseRequest(Adu({4, 0, 0, 0, 1})).cls, FrameClass::kRead);
}

TEST(ModbusFrameTest, DecodesEveryWriteFunction) {
  ParsedFrame f = ParseRequest(Adu({5, 0, 7, 0xFF, 0x00}));
  ASSERT_EQ(f.cls, FrameClass::kWrite);
  EXPECT_EQ(f.write.kind, RegisterKind::kCoil);
  EXPECT_EQ(f.write.address, 7);
  EXPECT_EQ(f.write.values, std::vector<uint16_t>({1}));

  f = ParseRequest(Adu({6, 0x01, 0x00, 0x12, 0x34}));
  ASSERT_EQ(f.cls, FrameClass::kWrite);
  EXPECT_EQ(f.write.kind, RegisterKind::kHolding);
  EXPECT_EQ(f.write.address, 256);
  EXPECT_EQ(f.write.values, std::vector<uint16_t>({0x1234}));

  // 10 coils from 20: bits 1,0,1,1,0,0,0,0 | 1,1
  f = ParseRequest(Adu({15, 0, 20, 0, 10, 2, 0b00001101, 0b00000011}));
  ASSERT_EQ(f.cls, FrameClass::kWrite);
  EXPECT_EQ(f.write.values, std::vector<uint16_t>({1, 0, 1, 1, 0, 0, 0, 0, 1, 1}));

  f = ParseRequest(Adu({16, 0, 4, 0, 2, 4, 0, 1, 0, 2}));
  ASSERT_EQ(f.cls, FrameClass::kWrite);
  EXPECT_EQ(f.write.address, 4);
  EXPECT_EQ(f.write.values, std::vector<uint16_t>({1, 2}));

  f = ParseRequest(Adu({23, 0, 0, 0, 3, 0, 9, 0, 1, 2, 0xAB, 0xCD}));
  ASSERT_EQ(f.cls, FrameClass::kWrite);
  EXPECT_EQ(f.write.address, 9);
  EXPECT_EQ(f.write.values, std::vector<uint16_t>({0xABCD}));
}

TEST(ModbusFrameTest, OtherFunctionCodesAreOther) {
  ParsedFrame f = ParseRequest(Adu({22, 0, 1, 0xFF, 0xFF, 0, 0}));
  EXPECT_EQ(f.cls, FrameClass::kOther);
  EXPECT_EQ(f.function, 22);
}

TEST(ModbusFrameTest, RefusesInconsistentFrames) {
  std::vector<uint8_t> bad_len = Adu({6, 0, 1, 0, 1});
  bad_len[5] = 9;
  EXPECT_EQ(ParseRequest(bad_len).cls, FrameClass::kMalformed);
  std::vector<uint8_t> bad_proto = Adu({6, 0, 1, 0, 1});
  bad_proto[3] = 1;
  EXPECT_EQ(ParseRequest(bad_proto).cls, FrameClass::kMalformed);
  EXPECT_EQ(ParseRequest(Adu({5, 0, 1, 0x12, 0x34})).cls, FrameClass::kMalformed);
  EXPECT_EQ(ParseRequest(Adu({15, 0, 0, 0, 10, 1, 0xFF})).cls, FrameClass::kMalformed);
  EXPECT_EQ(ParseRequest(Adu({16, 0, 0, 0, 2, 3, 0, 1, 0})).cls, FrameClass::kMalformed);
  EXPECT_EQ(ParseRequest(Adu({16, 0xFF, 0xFF, 0, 2, 4, 0, 1, 0, 2})).cls,
            FrameClass::kMalformed);  // runs past 65535
  EXPECT_EQ(ParseRequest(Adu({16, 0, 0, 0, 0, 0})).cls, FrameClass::kMalformed);
  EXPECT_EQ(ParseRequest(std::vector<uint8_t>{0, 1, 0}).cls, FrameClass::kMalformed);
}

TEST(ModbusFrameTest, ResponseMustAnswerTheRequest) {
  const std::vector<uint8_t> req = Adu({6, 0, 1, 0, 5});
  EXPECT_TRUE(ResponseMatches(req, Adu({6, 0, 1, 0, 5})));
  EXPECT_TRUE(ResponseMatches(req, Adu({0x86, 3})));
  EXPECT_FALSE(ResponseMatches(req, Adu({3, 2, 0, 5})));
  EXPECT_FALSE(ResponseMatches(req, Adu({6, 0, 1, 0, 5}, 2)));
}

}  // namespace
}  // namespace vigil::gateway
