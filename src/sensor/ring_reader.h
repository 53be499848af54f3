#pragma once

// RingReader: the consumer side of one BPF ring buffer map (BPF_MAP_TYPE_RINGBUF), in place of
// libbpf's ring_buffer__new/ring_buffer__consume, mapping the data pages once.
//
// Why: libbpf maps the data area twice in a row, so that a record that wraps past the end reads
// as one contiguous block, and the kernel fills in every page of that mapping at mmap time: a
// 4 MiB ring cost 8 MiB of the agent's resident memory. Here the data area is mapped once
// (4 MiB) and the rare record that wraps is copied into a scratch buffer before the callback.
//
// Protocol (the kernel's, as libbpf reads it): the consumer position lives on a page the
// consumer maps read-write; the producer position and the data are read-only. Each record has
// an 8-byte header, {u32 len with BUSY and DISCARD bits, u32 page offset}, 8-aligned; a record
// whose BUSY bit is set is still being written and ends the pass.
//
// Thread-safety: one consuming thread.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"

namespace vigil::sensor {

class RingReader {
 public:
  // Called with each committed, non-discarded record (valid during the call only). A negative
  // return ends the pass after this record (it counts as consumed) and Consume returns it.
  using Callback = int (*)(void* ctx, const void* data, size_t size);

  // Maps the ring buffer map `map_fd` whose data area is `data_bytes` (the map's max_entries:
  // a power of two, a multiple of the page size). Fails (kInvalidArgument for a bad size,
  // kUnavailable naming the mmap that failed) without side effects.
  static core::Result<std::unique_ptr<RingReader>> Open(int map_fd, size_t data_bytes,
                                                        Callback callback, void* ctx);
  ~RingReader();
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  // Hands every record already committed to the callback, oldest first, and releases its space
  // to the producer. Returns how many records were handed over, or the callback's negative
  // return value.
  int64_t Consume();

  // Bytes of this process's address space the mappings take (consumer page, producer page and
  // the data area once).
  size_t mapped_bytes() const { return consumer_bytes_ + producer_bytes_; }

 private:
  RingReader(Callback callback, void* ctx, size_t data_bytes, size_t page);

  Callback callback_;
  void* ctx_;
  size_t data_bytes_;
  size_t page_;
  void* consumer_ = nullptr;  // one page; its first word is the consumer position
  void* producer_ = nullptr;  // the producer page, then the data area
  size_t consumer_bytes_ = 0;
  size_t producer_bytes_ = 0;
  std::vector<uint8_t> scratch_;  // a wrapping record, reassembled
};

}  // namespace vigil::sensor
