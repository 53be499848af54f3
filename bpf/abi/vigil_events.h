/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The records that bpf/vigil_sensor.bpf.c writes into the BPF ring buffer and the maps that
 * user space (src/sensor/ebpf_sensor.cc) reads and updates. This header is compiled twice:
 * by clang -target bpf (after vmlinux.h) and by the C++ compiler. Both must agree on every
 * size and offset; tests/unit/sensor_ebpf/ebpf_abi_test.cc checks that against the BTF of
 * the compiled object. Layout rules: fixed-width types only, every field naturally aligned,
 * explicit padding, no bit-fields. Change a layout only together with VIGIL_ABI_VERSION.
 * Spec: docs/ebpf-sensor.md.
 */
#ifndef VIGIL_BPF_ABI_VIGIL_EVENTS_H_
#define VIGIL_BPF_ABI_VIGIL_EVENTS_H_

#ifndef __bpf__
#include <linux/types.h>
#endif

#define VIGIL_ABI_VERSION 4

#define VIGIL_COMM_LEN 16
#define VIGIL_PATH_LEN 256  /* includes the terminating NUL */
#define VIGIL_ARGS_LEN 512  /* argv as NUL-separated strings, truncated */
#define VIGIL_FSTYPE_LEN 32
#define VIGIL_ADDR_LEN 16   /* IPv4 uses the first 4 bytes */
#define VIGIL_SYSCALL_BATCH 64  /* calls per VIGIL_EV_SYSCALLS record at most */
/* Set in vigil_syscall_call.nr for a 32-bit (ia32 compat) call: the rest is its i386 number. */
#define VIGIL_NR_I386 0x80000000u

/* Record types (vigil_event_header.type). */
enum vigil_event_type {
  VIGIL_EV_SYSCALLS = 1, /* struct vigil_syscall_batch: completed calls of one thread, in order */
  VIGIL_EV_EXEC = 2,     /* struct vigil_exec_event: sched_process_exec (a successful exec) */
  VIGIL_EV_FORK = 3,     /* struct vigil_fork_event: a new process (not a thread) */
  VIGIL_EV_EXIT = 4,     /* struct vigil_exit_event: the last thread of a process exited */
  VIGIL_EV_FILE = 5,     /* struct vigil_file_event: execve*, open*, unlink*, rename*, link*,
                            symlink* */
  VIGIL_EV_NET = 6,      /* struct vigil_net_event: connect, accept, accept4, bind, socket */
  VIGIL_EV_CRED = 7,     /* struct vigil_cred_event: setuid family, ptrace */
  VIGIL_EV_MOUNT = 8,    /* struct vigil_mount_event: mount, umount2 */
};

/* Bits of vigil_config.typed_mask: which typed records the kernel side produces. */
enum vigil_typed_bit {
  VIGIL_TYPED_EXEC = 1u << 0,   /* VIGIL_EV_EXEC */
  VIGIL_TYPED_FORK = 1u << 1,   /* VIGIL_EV_FORK */
  VIGIL_TYPED_EXIT = 1u << 2,   /* VIGIL_EV_EXIT */
  VIGIL_TYPED_EXECVE = 1u << 3, /* VIGIL_EV_FILE from execve/execveat (attempts, with ret) */
  VIGIL_TYPED_OPEN = 1u << 4,   /* VIGIL_EV_FILE from open/openat/openat2 */
  VIGIL_TYPED_FILE_MOD = 1u << 5, /* VIGIL_EV_FILE from unlink*, rename*, link*, symlink* */
  VIGIL_TYPED_NET = 1u << 6,    /* VIGIL_EV_NET (socket: family = domain, port = type) */
  VIGIL_TYPED_CRED = 1u << 7,   /* VIGIL_EV_CRED from the setuid family */
  VIGIL_TYPED_PTRACE = 1u << 8, /* VIGIL_EV_CRED from ptrace */
  VIGIL_TYPED_MOUNT = 1u << 9,  /* VIGIL_EV_MOUNT */
  VIGIL_TYPED_ALL = (1u << 10) - 1,
};

/* Bits of vigil_config.filter_flags: which include sets are non-empty. An event passes an
 * include filter when its key is in the set; an inactive include filter passes everything. */
enum vigil_filter_flag {
  VIGIL_FILTER_INCLUDE_COMM = 1u << 0,
  VIGIL_FILTER_INCLUDE_CGROUP = 1u << 1,
  VIGIL_FILTER_INCLUDE_UID = 1u << 2,
  VIGIL_FILTER_EXCLUDE_COMM = 1u << 3,  /* the exclude set is non-empty (skips a lookup) */
  VIGIL_FILTER_EXCLUDE_CGROUP = 1u << 4,
  VIGIL_FILTER_EXCLUDE_UID = 1u << 5,
};

/* Values in the filter maps (filter_comm, filter_cgroup, filter_uid). */
enum vigil_filter_value {
  VIGIL_FILTER_EXCLUDE = 1u << 0,
  VIGIL_FILTER_INCLUDE = 1u << 1,
};

/* Indexes into the per-CPU `counters` array: events the kernel side did not deliver (or
 * delivered damaged), by cause. User space sums the CPUs. */
enum vigil_counter {
  VIGIL_CNT_RINGBUF_FULL = 0,   /* bpf_ringbuf_reserve failed: record lost */
  VIGIL_CNT_STR_READ = 1,       /* a user/kernel string read failed: record sent, string empty */
  VIGIL_CNT_ADDR_READ = 2,      /* a sockaddr read failed: record sent without address */
  VIGIL_CNT_FILTERED = 3,       /* suppressed by a comm/cgroup/uid filter (not a loss) */
  VIGIL_CNT_PENDING_FULL = 4,   /* unused since ABI 2 (nothing is kept from entry to exit) */
  VIGIL_CNT_ARGS_TRUNCATED = 5, /* argv longer than VIGIL_ARGS_LEN: record sent truncated */
  VIGIL_CNT_MAX = 6,
};

/* The single entry of the `settings` array map; user space rewrites it at run time. */
struct vigil_config {
  __u32 syscall_stream; /* non-zero: every system call goes into VIGIL_EV_SYSCALLS records */
  __u32 typed_mask;     /* enum vigil_typed_bit */
  __u32 filter_flags;   /* enum vigil_filter_flag */
  __u32 generation;     /* changed by every rewrite: cached filter decisions are redone */
  __u32 typed_per_call; /* non-zero: typed records come from the per-call tracepoint programs
                         * (syscalls/sys_exit_<call>) and the raw sys_exit program sends none */
};

/* Key of the filter_comm map: the task's comm, NUL-padded. */
struct vigil_comm_key {
  char comm[VIGIL_COMM_LEN];
};

/* Every record starts with this header. `pid` is the kernel's task id (thread id), `tgid` the
 * process id, `ppid` the tgid of the real parent; `ts_ns` is CLOCK_MONOTONIC (bpf_ktime). */
struct vigil_event_header {
  __u16 type;     /* enum vigil_event_type */
  __u16 size;     /* bytes of the whole record, header included */
  __u32 cpu;
  __u64 ts_ns;
  __u32 pid;
  __u32 tgid;
  __u32 ppid;
  __u32 uid;
  __u64 cgroup_id;
  char comm[VIGIL_COMM_LEN];
};

/* One call of the system call stream. */
struct vigil_syscall_call {
  __u32 ts_delta_ns;  /* after the batch header's ts_ns */
  __u32 nr;           /* x86_64 number, or VIGIL_NR_I386 | i386 number */
  __s64 ret;          /* the return value (negative errno on failure); 0 for exit/exit_group */
};

/* Consecutive calls of one thread (hdr.pid) on one CPU, oldest first. The header's identity
 * fields were read at the first call. Only the first `count` calls are sent:
 * hdr.size = offsetof(calls) + count * sizeof(struct vigil_syscall_call). */
struct vigil_syscall_batch {
  struct vigil_event_header hdr;
  __u32 count;  /* 1..VIGIL_SYSCALL_BATCH */
  __u32 reserved;
  struct vigil_syscall_call calls[VIGIL_SYSCALL_BATCH];
};

/* The value of the per-CPU `stream` map: the batch one CPU is filling and the filter decision
 * for its thread. User space reads it (EbpfSensor) to detach the context-switch program only once
 * no CPU holds calls or a cached decision: tid == 0 and batch.count == 0 on every CPU. */
struct vigil_stream_state {
  __u32 tid;         /* thread whose filter decision `admitted` is (0: none) */
  __u32 admitted;    /* that thread passes the filters */
  __u32 generation;  /* vigil_config.generation when `admitted` was decided */
  __u32 reserved;
  __u64 jiffies0;    /* jiffies at the batch's first call (its hdr.ts_ns) */
  struct vigil_syscall_batch batch; /* batch.count == 0: empty */
};

/* Bits of vigil_exec_event.exe_flags. */
enum vigil_exe_flag {
  VIGIL_EXE_MEMFD = 1u << 0, /* the executable is a memfd (its dentry is named "memfd:...") */
};

struct vigil_exec_event {
  struct vigil_event_header hdr;
  __u32 old_pid;   /* the task id before exec (differs when a non-leader thread exec'd) */
  __u32 args_len;  /* bytes used in args */
  __u32 loginuid;  /* audit login uid; 0xffffffff when unset */
  __u32 tty;       /* controlling terminal: major << 20 | minor; 0 when none */
  __u32 exe_flags; /* enum vigil_exe_flag */
  __u32 reserved;
  __u64 cap_effective; /* the new credentials' capability bits */
  __u64 cap_permitted;
  char filename[VIGIL_PATH_LEN];  /* as passed to exec (bprm->filename) */
  char args[VIGIL_ARGS_LEN];      /* argv, NUL-separated, possibly truncated */
};

struct vigil_fork_event {
  struct vigil_event_header hdr;  /* the parent */
  __u32 child_pid;
  __u32 child_tgid;
};

struct vigil_exit_event {
  struct vigil_event_header hdr;
  __u32 exit_code;  /* wait(2) status: (code << 8) | signal */
  __u32 reserved;
};

/* Sent short when there is no second path (ABI 4): the record ends after the NUL of `path`
 * (hdr.size = offsetof(path) + strlen(path) + 1), and `path2` is then empty. Records with a
 * second path (rename*, link*, symlink*) and the exec records of sched_process_exec are sent
 * whole (sizeof). */
struct vigil_file_event {
  struct vigil_event_header hdr;
  __s64 ret;
  __u32 nr;
  __s32 dfd;     /* directory fd for *at calls (AT_FDCWD = -100), else -100 */
  __u32 flags;   /* open flags, unlinkat/renameat2/execveat flags */
  __u32 mode;
  char path[VIGIL_PATH_LEN];   /* the (first) path argument */
  char path2[VIGIL_PATH_LEN];  /* rename*: the new path; empty otherwise */
};

struct vigil_net_event {
  struct vigil_event_header hdr;
  __s64 ret;
  __u32 nr;
  __s32 fd;
  __u16 family;   /* AF_INET, AF_INET6, AF_UNIX (address not copied), 0 when unknown;
                     socket: the domain argument */
  __u16 port;     /* host byte order; socket: the type argument (low 16 bits) */
  __u8 protocol;  /* connect/bind/accept*: the socket's IPPROTO_* (0 when unknown);
                     socket: the protocol argument (low 8 bits) */
  __u8 reserved[3];
  __u8 addr[VIGIL_ADDR_LEN];  /* network byte order; IPv4 in the first 4 bytes */
};

struct vigil_cred_event {
  struct vigil_event_header hdr;
  __s64 ret;
  __u32 nr;
  __u32 reserved;
  __u64 args[4];  /* setuid family: the ids as passed; ptrace: request, pid, addr, data */
};

struct vigil_mount_event {
  struct vigil_event_header hdr;
  __s64 ret;
  __u32 nr;
  __u32 reserved;
  __u64 flags;
  char source[VIGIL_PATH_LEN];  /* mount only */
  char target[VIGIL_PATH_LEN];
  char fstype[VIGIL_FSTYPE_LEN]; /* mount only */
};

#endif /* VIGIL_BPF_ABI_VIGIL_EVENTS_H_ */
