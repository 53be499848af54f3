#pragma once

// What the proxy reads out of a Modbus/TCP request that libmodbus has framed: the MBAP header's
// consistency and, for the function codes that write coils or holding registers, which
// addresses get which values. libmodbus frames requests by function code and ignores the MBAP
// length; the proxy checks it so that a frame libmodbus misread never passes.
//
// Function codes and layouts (Modbus Application Protocol v1.1b3):
//   5  write single coil        addr(2) value(2: 0xFF00 on, 0x0000 off)
//   6  write single register    addr(2) value(2)
//   15 write multiple coils     addr(2) count(2) bytes(1) bits...   count 1..1968
//   16 write multiple registers addr(2) count(2) bytes(1) values... count 1..123
//   23 read/write registers     raddr(2) rcount(2) waddr(2) wcount(2) bytes(1) values...
//                               rcount 1..125, wcount 1..121
//   22 mask write register      addr(2) and(2) or(2): changes a register the proxy cannot
//                               predict without reading it, so it is treated as an other function.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "gateway/config.h"

namespace vigil::gateway {

inline constexpr size_t kMbapHeaderBytes = 7;  // transaction(2) protocol(2) length(2) unit(1)

enum class FrameClass : uint8_t {
  kRead,      // 1, 2, 3, 4: passes through
  kWrite,     // 5, 6, 15, 16, 23: decided
  kOther,     // any other function code
  kMalformed  // inconsistent header or write body; the connection is closed
};

struct WriteRequest {
  uint8_t unit = 0;
  uint8_t function = 0;
  RegisterKind kind = RegisterKind::kHolding;
  uint16_t address = 0;             // first address written
  std::vector<uint16_t> values;     // one per address written; coils are 0 or 1
};

struct ParsedFrame {
  FrameClass cls = FrameClass::kMalformed;
  uint8_t unit = 0;
  uint8_t function = 0;
  WriteRequest write;             // cls == kWrite
  std::string_view reason;        // cls == kMalformed: a static description
};

// Classifies one request ADU (MBAP header included, as modbus_receive returns it). Never reads
// past `adu`. Writes are decoded into `write`; a write whose body breaks the layout above (a
// count out of range, a byte count that disagrees, a coil value other than 0xFF00/0x0000) is
// kMalformed.
ParsedFrame ParseRequest(std::span<const uint8_t> adu);

// Checks a response ADU from the PLC against the request it answers: whole MBAP header, same
// unit, same function code (or its exception form). False when it does not belong.
bool ResponseMatches(std::span<const uint8_t> request, std::span<const uint8_t> response);

}  // namespace vigil::gateway
