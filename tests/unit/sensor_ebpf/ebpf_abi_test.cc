// The records of bpf/abi/vigil_events.h must have the same layout in the kernel programs and in
// user space. The kernel's view is the BTF that clang emitted into vigil_sensor.bpf.o; the user
// view is offsetof/sizeof as compiled here.

#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "abi/vigil_events.h"
#include "sensor/ebpf_sensor.h"

namespace vigil::sensor {
namespace {

struct Member {
  std::string name;
  size_t offset;
  size_t size;
};
struct Layout {
  std::string name;
  size_t size;
  std::vector<Member> members;
};

#define VIGIL_MEMBER(S, f) \
  Member { #f, offsetof(S, f), sizeof(static_cast <S*>(nullptr)->f) }

std::vector<Layout> UserSpaceLayouts() {
  return {
      {"vigil_config",
       sizeof(vigil_config),
       {VIGIL_MEMBER(vigil_config, syscall_stream), VIGIL_MEMBER(vigil_config, typed_mask),
        VIGIL_MEMBER(vigil_config, filter_flags), VIGIL_MEMBER(vigil_config, generation),
        VIGIL_MEMBER(vigil_config, typed_per_call)}},
      {"vigil_comm_key", sizeof(vigil_comm_key), {VIGIL_MEMBER(vigil_comm_key, comm)}},
      {"vigil_event_header",
       sizeof(vigil_event_header),
       {VIGIL_MEMBER(vigil_event_header, type), VIGIL_MEMBER(vigil_event_header, size),
        VIGIL_MEMBER(vigil_event_header, cpu), VIGIL_MEMBER(vigil_event_header, ts_ns),
        VIGIL_MEMBER(vigil_event_header, pid), VIGIL_MEMBER(vigil_event_header, tgid),
        VIGIL_MEMBER(vigil_event_header, ppid), VIGIL_MEMBER(vigil_event_header, uid),
        VIGIL_MEMBER(vigil_event_header, cgroup_id), VIGIL_MEMBER(vigil_event_header, comm)}},
      {"vigil_syscall_call",
       sizeof(vigil_syscall_call),
       {VIGIL_MEMBER(vigil_syscall_call, ts_delta_ns), VIGIL_MEMBER(vigil_syscall_call, nr),
        VIGIL_MEMBER(vigil_syscall_call, ret)}},
      {"vigil_syscall_batch",
       sizeof(vigil_syscall_batch),
       {VIGIL_MEMBER(vigil_syscall_batch, hdr), VIGIL_MEMBER(vigil_syscall_batch, count),
        VIGIL_MEMBER(vigil_syscall_batch, reserved), VIGIL_MEMBER(vigil_syscall_batch, calls)}},
      {"vigil_stream_state",
       sizeof(vigil_stream_state),
       {VIGIL_MEMBER(vigil_stream_state, tid), VIGIL_MEMBER(vigil_stream_state, admitted),
        VIGIL_MEMBER(vigil_stream_state, generation), VIGIL_MEMBER(vigil_stream_state, reserved),
        VIGIL_MEMBER(vigil_stream_state, jiffies0), VIGIL_MEMBER(vigil_stream_state, batch)}},
      {"vigil_exec_event",
       sizeof(vigil_exec_event),
       {VIGIL_MEMBER(vigil_exec_event, hdr), VIGIL_MEMBER(vigil_exec_event, old_pid),
        VIGIL_MEMBER(vigil_exec_event, args_len), VIGIL_MEMBER(vigil_exec_event, loginuid),
        VIGIL_MEMBER(vigil_exec_event, tty), VIGIL_MEMBER(vigil_exec_event, exe_flags),
        VIGIL_MEMBER(vigil_exec_event, reserved), VIGIL_MEMBER(vigil_exec_event, cap_effective),
        VIGIL_MEMBER(vigil_exec_event, cap_permitted), VIGIL_MEMBER(vigil_exec_event, filename),
        VIGIL_MEMBER(vigil_exec_event, args)}},
      {"vigil_fork_event",
       sizeof(vigil_fork_event),
       {VIGIL_MEMBER(vigil_fork_event, hdr), VIGIL_MEMBER(vigil_fork_event, child_pid),
        VIGIL_MEMBER(vigil_fork_event, child_tgid)}},
      {"vigil_exit_event",
       sizeof(vigil_exit_event),
       {VIGIL_MEMBER(vigil_exit_event, hdr), VIGIL_MEMBER(vigil_exit_event, exit_code),
        VIGIL_MEMBER(vigil_exit_event, reserved)}},
      {"vigil_file_event",
       sizeof(vigil_file_event),
       {VIGIL_MEMBER(vigil_file_event, hdr), VIGIL_MEMBER(vigil_file_event, ret),
        VIGIL_MEMBER(vigil_file_event, nr), VIGIL_MEMBER(vigil_file_event, dfd),
        VIGIL_MEMBER(vigil_file_event, flags), VIGIL_MEMBER(vigil_file_event, mode),
        VIGIL_MEMBER(vigil_file_event, path), VIGIL_MEMBER(vigil_file_event, path2)}},
      {"vigil_net_event",
       sizeof(vigil_net_event),
       {VIGIL_MEMBER(vigil_net_event, hdr), VIGIL_MEMBER(vigil_net_event, ret),
        VIGIL_MEMBER(vigil_net_event, nr), VIGIL_MEMBER(vigil_net_event, fd),
        VIGIL_MEMBER(vigil_net_event, family), VIGIL_MEMBER(vigil_net_event, port),
        VIGIL_MEMBER(vigil_net_event, protocol), VIGIL_MEMBER(vigil_net_event, reserved),
        VIGIL_MEMBER(vigil_net_event, addr)}},
      {"vigil_cred_event",
       sizeof(vigil_cred_event),
       {VIGIL_MEMBER(vigil_cred_event, hdr), VIGIL_MEMBER(vigil_cred_event, ret),
        VIGIL_MEMBER(vigil_cred_event, nr), VIGIL_MEMBER(vigil_cred_event, reserved),
        VIGIL_MEMBER(vigil_cred_event, args)}},
      {"vigil_mount_event",
       sizeof(vigil_mount_event),
       {VIGIL_MEMBER(vigil_mount_event, hdr), VIGIL_MEMBER(vigil_mount_event, ret),
        VIGIL_MEMBER(vigil_mount_event, nr), VIGIL_MEMBER(vigil_mount_event, reserved),
        VIGIL_MEMBER(vigil_mount_event, flags), VIGIL_MEMBER(vigil_mount_event, source),
        VIGIL_MEMBER(vigil_mount_event, target), VIGIL_MEMBER(vigil_mount_event, fstype)}},
  };
}

// Compile-time half: records are 8-byte aligned and padded explicitly (no hidden padding that
// one compiler could lay out differently).
static_assert(sizeof(vigil_event_header) % 8 == 0);
static_assert(sizeof(vigil_syscall_call) % 8 == 0);
static_assert(sizeof(vigil_syscall_batch) % 8 == 0);
static_assert(sizeof(vigil_exec_event) % 8 == 0);
static_assert(sizeof(vigil_file_event) % 8 == 0);
static_assert(sizeof(vigil_net_event) % 8 == 0);
static_assert(sizeof(vigil_mount_event) % 8 == 0);
static_assert(offsetof(vigil_syscall_batch, count) == sizeof(vigil_event_header));

TEST(EbpfAbiTest, KernelAndUserSpaceAgreeOnEveryRecordLayout) {
  btf* kernel_view = btf__parse_elf(VIGIL_BPF_OBJECT, nullptr);
  ASSERT_NE(kernel_view, nullptr) << "cannot read BTF from " << VIGIL_BPF_OBJECT << ": "
                                  << std::strerror(errno);
  for (const Layout& layout : UserSpaceLayouts()) {
    SCOPED_TRACE(layout.name);
    int id = btf__find_by_name_kind(kernel_view, layout.name.c_str(), BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << "struct " << layout.name << " is not in the BTF of " << VIGIL_BPF_OBJECT
                     << " (reference it from the .bpf.c so that clang emits it)";
    const btf_type* type = btf__type_by_id(kernel_view, id);
    EXPECT_EQ(static_cast<size_t>(btf__resolve_size(kernel_view, id)), layout.size);
    ASSERT_EQ(static_cast<size_t>(btf_vlen(type)), layout.members.size())
        << "the kernel's struct has a different number of members";
    const btf_member* members = btf_members(type);
    for (size_t i = 0; i < layout.members.size(); ++i) {
      const Member& want = layout.members[i];
      std::string name = btf__name_by_offset(kernel_view, members[i].name_off);
      EXPECT_EQ(name, want.name) << "member " << i;
      uint32_t bit_offset = btf_member_bit_offset(type, static_cast<uint32_t>(i));
      EXPECT_EQ(bit_offset % 8, 0u) << name << " is a bit-field";
      EXPECT_EQ(bit_offset / 8, want.offset) << "offset of " << name;
      EXPECT_EQ(static_cast<size_t>(btf__resolve_size(kernel_view, members[i].type)), want.size)
          << "size of " << name;
    }
  }
  btf__free(kernel_view);
}

TEST(EbpfSensorOptionsTest, RejectsRingBufferSizeThatIsNotAPowerOfTwo) {
  EbpfOptions options;
  options.ring_buffer_bytes = 5000;
  auto sensor = EbpfSensor::Open(options);
  ASSERT_FALSE(sensor.has_value());
  EXPECT_EQ(sensor.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(sensor.error().message().find("ring_buffer_bytes 5000"), std::string::npos)
      << sensor.error().message();
}

TEST(EbpfSensorOptionsTest, RejectsUnknownTypedEventBits) {
  EbpfOptions options;
  options.typed_events = 1u << 31;
  auto sensor = EbpfSensor::Open(options);
  ASSERT_FALSE(sensor.has_value());
  EXPECT_EQ(sensor.error().code(), core::StatusCode::kInvalidArgument);
}

TEST(EbpfSensorOptionsTest, RejectsAnIdlePollOutsideTenMillisecondsToAMinute) {
  for (auto ms : {std::chrono::milliseconds(9), std::chrono::milliseconds(60'001)}) {
    EbpfOptions options;
    options.idle_poll = ms;
    auto sensor = EbpfSensor::Open(options);
    ASSERT_FALSE(sensor.has_value()) << ms.count();
    EXPECT_EQ(sensor.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(sensor.error().message().find("idle_poll " + std::to_string(ms.count()) + " ms"),
              std::string::npos)
        << sensor.error().message();
  }
}

TEST(EbpfSensorOptionsTest, NamesEveryLostCause) {
  for (size_t i = 0; i < kEbpfLostCauseCount; ++i) {
    EXPECT_NE(EbpfLostCauseName(static_cast<EbpfLostCause>(i)), "unknown") << i;
  }
}

}  // namespace
}  // namespace vigil::sensor
