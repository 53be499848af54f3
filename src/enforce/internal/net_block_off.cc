// block-network in a build without BPF support (-DVIGIL_BPF=OFF): every use is refused with the
// reason, so the other actions still work.

#include "enforce/internal/net_block.h"

namespace vigil::enforce::internal {
namespace {
core::Status Off() {
  return core::FailedPrecondition(
      "block-network: this vigil was built without BPF support (-DVIGIL_BPF=OFF)");
}
}  // namespace

bool NetBlock::Attached() const { return false; }
core::Status NetBlock::Add(uint64_t, uint64_t) { return Off(); }
core::Result<uint64_t> NetBlock::Remove(uint64_t) { return Off(); }

}  // namespace vigil::enforce::internal
