#include "sensor/ring_reader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vigil::sensor {

namespace {

// From linux/bpf.h (the ring buffer's record header), spelled out so that this file does not
// depend on which kernel headers are installed.
constexpr uint32_t kBusyBit = 1u << 31;
constexpr uint32_t kDiscardBit = 1u << 30;
constexpr size_t kHeaderBytes = 8;

}  // namespace

RingReader::RingReader(Callback callback, void* ctx, size_t data_bytes, size_t page)
    : callback_(callback), ctx_(ctx), data_bytes_(data_bytes), page_(page) {}

core::Result<std::unique_ptr<RingReader>> RingReader::Open(int map_fd, size_t data_bytes,
                                                           Callback callback, void* ctx) {
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return core::Unavailable("ring reader: sysconf(_SC_PAGESIZE) failed");
  const auto page_bytes = static_cast<size_t>(page);
  if (data_bytes == 0 || (data_bytes & (data_bytes - 1)) != 0 || data_bytes % page_bytes != 0) {
    return core::InvalidArgument("ring reader: data size " + std::to_string(data_bytes) +
                                 " is not a power of two multiple of the page size");
  }
  if (callback == nullptr) return core::InvalidArgument("ring reader: no callback");
  std::unique_ptr<RingReader> r(new RingReader(callback, ctx, data_bytes, page_bytes));
  void* c = mmap(nullptr, page_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (c == MAP_FAILED) {
    return core::Unavailable(std::string("ring reader: mmap of the consumer page: ") +
                             std::strerror(errno));
  }
  r->consumer_ = c;
  r->consumer_bytes_ = page_bytes;
  // The producer page and the data area once (libbpf maps the data twice).
  void* p = mmap(nullptr, page_bytes + data_bytes, PROT_READ, MAP_SHARED, map_fd,
                 static_cast<off_t>(page_bytes));
  if (p == MAP_FAILED) {
    return core::Unavailable(std::string("ring reader: mmap of the producer page and data: ") +
                             std::strerror(errno));
  }
  r->producer_ = p;
  r->producer_bytes_ = page_bytes + data_bytes;
  return r;
}

RingReader::~RingReader() {
  if (producer_ != nullptr) munmap(producer_, producer_bytes_);
  if (consumer_ != nullptr) munmap(consumer_, consumer_bytes_);
}

int64_t RingReader::Consume() {
  auto* consumer_pos = static_cast<uint64_t*>(consumer_);
  const auto* producer_pos = static_cast<const uint64_t*>(producer_);
  const uint8_t* data = static_cast<const uint8_t*>(producer_) + page_;
  const uint64_t mask = data_bytes_ - 1;
  int64_t handed = 0;
  uint64_t cons = __atomic_load_n(consumer_pos, __ATOMIC_ACQUIRE);
  bool more = true;
  while (more) {
    more = false;
    const uint64_t prod = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE);
    while (cons < prod) {
      // Headers are 8-aligned and the size is a multiple of 8: a header never wraps.
      const auto* len_word = reinterpret_cast<const uint32_t*>(data + (cons & mask));
      const uint32_t word = __atomic_load_n(len_word, __ATOMIC_ACQUIRE);
      if ((word & kBusyBit) != 0) return handed;
      more = true;
      const size_t len = word & ~(kBusyBit | kDiscardBit);
      const uint64_t at = (cons + kHeaderBytes) & mask;
      cons += (len + kHeaderBytes + 7) & ~uint64_t{7};
      if ((word & kDiscardBit) == 0) {
        const void* sample = data + at;
        if (at + len > data_bytes_) {  // wraps: reassemble it
          const size_t first = data_bytes_ - at;
          scratch_.resize(len);
          std::memcpy(scratch_.data(), data + at, first);
          std::memcpy(scratch_.data() + first, data, len - first);
          sample = scratch_.data();
        }
        const int rc = callback_(ctx_, sample, len);
        if (rc < 0) {
          __atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
          return rc;
        }
        ++handed;
      }
      __atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
    }
  }
  return handed;
}

}  // namespace vigil::sensor
