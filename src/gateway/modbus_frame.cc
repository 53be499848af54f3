#include "gateway/modbus_frame.h"

namespace vigil::gateway {
namespace {

uint16_t Be16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

// The MBAP header is whole and its length field counts the unit id and the PDU exactly.
bool HeaderConsistent(std::span<const uint8_t> adu) {
  if (adu.size() < kMbapHeaderBytes + 1) return false;
  if (Be16(adu, 2) != 0) return false;  // protocol identifier: 0 is Modbus
  return Be16(adu, 4) == adu.size() - 6;
}

ParsedFrame Malformed(ParsedFrame f, std::string_view why) {
  f.cls = FrameClass::kMalformed;
  f.reason = why;
  return f;
}

// Registers from `pdu` at `at`: `count` big-endian values after a byte count of 2 * count.
bool TakeRegisters(std::span<const uint8_t> pdu, size_t at, size_t count,
                   std::vector<uint16_t>* out) {
  if (pdu.size() != at + 1 + 2 * count || pdu[at] != 2 * count) return false;
  out->reserve(count);
  for (size_t i = 0; i < count; ++i) out->push_back(Be16(pdu, at + 1 + 2 * i));
  return true;
}

}  // namespace

ParsedFrame ParseRequest(std::span<const uint8_t> adu) {
  ParsedFrame f;
  if (!HeaderConsistent(adu)) return Malformed(f, "MBAP header length or protocol mismatch");
  f.unit = adu[6];
  f.function = adu[7];
  const std::span<const uint8_t> pdu = adu.subspan(kMbapHeaderBytes);  // function code first
  WriteRequest& w = f.write;
  w.unit = f.unit;
  w.function = f.function;
  switch (f.function) {
    case 1: case 2: case 3: case 4:
      if (pdu.size() != 5) return Malformed(f, "read request length");
      f.cls = FrameClass::kRead;
      return f;
    case 5: {
      if (pdu.size() != 5) return Malformed(f, "write single coil length");
      const uint16_t v = Be16(pdu, 3);
      if (v != 0xFF00 && v != 0x0000) return Malformed(f, "coil value not 0xFF00 or 0x0000");
      w.kind = RegisterKind::kCoil;
      w.address = Be16(pdu, 1);
      w.values = {static_cast<uint16_t>(v == 0xFF00 ? 1 : 0)};
      break;
    }
    case 6:
      if (pdu.size() != 5) return Malformed(f, "write single register length");
      w.kind = RegisterKind::kHolding;
      w.address = Be16(pdu, 1);
      w.values = {Be16(pdu, 3)};
      break;
    case 15: {
      if (pdu.size() < 6) return Malformed(f, "write multiple coils length");
      const size_t count = Be16(pdu, 3);
      const size_t bytes = (count + 7) / 8;
      if (count < 1 || count > 1968 || pdu[5] != bytes || pdu.size() != 6 + bytes) {
        return Malformed(f, "write multiple coils count or byte count");
      }
      w.kind = RegisterKind::kCoil;
      w.address = Be16(pdu, 1);
      w.values.reserve(count);
      for (size_t i = 0; i < count; ++i) w.values.push_back((pdu[6 + i / 8] >> (i % 8)) & 1);
      break;
    }
    case 16: {
      if (pdu.size() < 6) return Malformed(f, "write multiple registers length");
      const size_t count = Be16(pdu, 3);
      if (count < 1 || count > 123 || !TakeRegisters(pdu, 5, count, &w.values)) {
        return Malformed(f, "write multiple registers count or byte count");
      }
      w.kind = RegisterKind::kHolding;
      w.address = Be16(pdu, 1);
      break;
    }
    case 23: {
      if (pdu.size() < 10) return Malformed(f, "read/write registers length");
      const size_t rcount = Be16(pdu, 3);
      const size_t wcount = Be16(pdu, 7);
      if (rcount < 1 || rcount > 125 || wcount < 1 || wcount > 121 ||
          !TakeRegisters(pdu, 9, wcount, &w.values)) {
        return Malformed(f, "read/write registers counts or byte count");
      }
      w.kind = RegisterKind::kHolding;
      w.address = Be16(pdu, 5);
      break;
    }
    default:
      f.cls = FrameClass::kOther;
      return f;
  }
  if (static_cast<size_t>(w.address) + w.values.size() > 65536) {
    return Malformed(f, "write runs past address 65535");
  }
  f.cls = FrameClass::kWrite;
  return f;
}

bool ResponseMatches(std::span<const uint8_t> request, std::span<const uint8_t> response) {
  if (!HeaderConsistent(response) || request.size() < kMbapHeaderBytes + 1) return false;
  return response[6] == request[6] && (response[7] & 0x7F) == request[7];
}

}  // namespace vigil::gateway
