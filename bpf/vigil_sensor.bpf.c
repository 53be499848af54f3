// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Vigil's live sensor: the system call stream (raw_syscalls sys_exit; every completed call with
// its return value, gathered per CPU into batches of one thread's calls), process
// lifecycle (sched_process_exec/fork/exit) and typed records with arguments for
// security-relevant calls. The stream and the lifecycle are tp_btf programs: they attach without
// tracefs and read kernel structures directly. With the stream off, the typed records come from
// one small program per typed call on the syscalls/sys_exit_<call> tracepoints instead, so that
// no program runs on the other calls (docs/ebpf-sensor.md, "Typed records without the stream").
// Records and maps: abi/vigil_events.h; docs/ebpf-sensor.md.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "abi/vigil_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define AT_FDCWD -100
#define S_IFMT 0170000
#define S_IFSOCK 0140000

// x86_64 system call numbers of the calls with typed records.
#define NR_OPEN 2
#define NR_SOCKET 41
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_BIND 49
#define NR_EXECVE 59
#define NR_EXIT 60
#define NR_RENAME 82
#define NR_LINK 86
#define NR_UNLINK 87
#define NR_SYMLINK 88
#define NR_PTRACE 101
#define NR_PRCTL 157
#define NR_SETUID 105
#define NR_SETGID 106
#define NR_SETREUID 113
#define NR_SETREGID 114
#define NR_SETRESUID 117
#define NR_SETRESGID 119
#define NR_SETFSUID 122
#define NR_SETFSGID 123
#define NR_MOUNT 165
#define NR_UMOUNT2 166
#define NR_EXIT_GROUP 231
#define NR_OPENAT 257
#define NR_UNLINKAT 263
#define NR_RENAMEAT 264
#define NR_LINKAT 265
#define NR_SYMLINKAT 266
#define NR_ACCEPT4 288
#define NR_RENAMEAT2 316
#define NR_EXECVEAT 322
#define NR_OPENAT2 437
#define NR_I386_EXIT 1
#define NR_I386_EXIT_GROUP 252
#define TS_COMPAT 0x0002  // thread_info.status: the current call is a 32-bit (ia32) one
// A batch is sent when its first call is this old, so that a thread which keeps running
// without being switched out still delivers its calls (and ts_delta_ns cannot overflow).
#define BATCH_MAX_AGE_NS (100ull * 1000 * 1000)

// Emits the BTF of the records that are only ever handled through locals, so that the layout
// test (tests/unit/sensor_ebpf/ebpf_abi_test.cc) finds every ABI struct in this object's BTF.
struct vigil_syscall_batch *vigil_abi_syscalls __attribute__((unused));
struct vigil_syscall_call *vigil_abi_syscall_call __attribute__((unused));
struct vigil_exec_event *vigil_abi_exec __attribute__((unused));
struct vigil_fork_event *vigil_abi_fork __attribute__((unused));
struct vigil_exit_event *vigil_abi_exit __attribute__((unused));
struct vigil_file_event *vigil_abi_file __attribute__((unused));
struct vigil_net_event *vigil_abi_net __attribute__((unused));
struct vigil_cred_event *vigil_abi_cred __attribute__((unused));
struct vigil_mount_event *vigil_abi_mount __attribute__((unused));

// The kernel tick rate (libbpf reads it from the kernel config; 0 when it cannot).
extern int CONFIG_HZ __kconfig __weak;

// Set by the loader before load: the agent's own process, never reported.
const volatile __u32 agent_tgid = 0;
// Stream batches do not wake the consumer until this many bytes wait in the ring buffer. A
// wake-up per record (libbpf's default when the consumer is idle) costs a context switch per
// event and more than quadrupled the cost of an open here.
const volatile __u64 wakeup_bytes = 1024 * 1024;
// The most often records force a wake-up, over all CPUs (see wakeup_flag).
const volatile __u64 wakeup_interval_ns = 10ull * 1000 * 1000;
// When a record last forced a wake-up (bpf_ktime_get_ns). Written by every CPU without a lock: a
// lost update only lets one more wake-up through.
__u64 last_wakeup_ns = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4 * 1024 * 1024);  // the loader resizes it
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vigil_config);
} settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, VIGIL_CNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct vigil_comm_key);
  __type(value, __u32);  // enum vigil_filter_value
} filter_comm SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, __u32);
} filter_cgroup SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, __u32);
} filter_uid SEC(".maps");

// The syscall stream of one CPU (struct vigil_stream_state, bpf/abi/vigil_events.h: user space
// reads it to know when no CPU holds calls). Programs on one CPU never interleave here: the
// syscall tracepoints run their BPF programs with preemption off, so a batch is only touched
// between two context switches, by one thread.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vigil_stream_state);
} stream SEC(".maps");

// The wake-up flag for a record of `size` bytes when `after` bytes wait with it. The consumer
// (src/sensor/ebpf_sensor.cc, NextFor) looks at the ring every 10 ms while records come and only
// every EbpfOptions::idle_poll once they stop, so a wake-up is forced
// - by the record that makes the data waiting cross wakeup_bytes (a burst);
// - by an `urgent` record (typed and lifecycle records: what policy and alerts act on), and by
//   any record while more than wakeup_bytes wait (the crossing above was missed: another CPU's
//   record crossed it between this one's reservation and its query), at most once per
//   wakeup_interval_ns over all CPUs. A typed record after a quiet spell thus wakes the consumer
//   at once, and one that is not forced follows a forced one by less than wakeup_interval_ns,
//   while the consumer is still looking every 10 ms: its delivery waits at most that.
// Stream batches are not urgent: they wait for the consumer's next look (their calls already wait
// in the kernel up to BATCH_MAX_AGE_NS). Waking on every record above the threshold (while a slow
// consumer catches up) cost a self-interrupt per record in the traced process and doubled the
// cost of an open here; now at most one per wakeup_interval_ns.
static __always_inline __u64 wakeup_flag(__u64 after, __u64 size, bool urgent, __u64 now) {
  if (after >= wakeup_bytes && after < wakeup_bytes + size) return BPF_RB_FORCE_WAKEUP;
  if (!urgent) {
    if (after < wakeup_bytes) return BPF_RB_NO_WAKEUP;
    now = bpf_ktime_get_ns();
  }
  // Signed: another CPU may have stored a time later than this record's.
  if ((__s64)(now - last_wakeup_ns) < (__s64)wakeup_interval_ns) return BPF_RB_NO_WAKEUP;
  last_wakeup_ns = now;
  return BPF_RB_FORCE_WAKEUP;
}

// Submits a reserved typed or lifecycle record (already counted in the data waiting); its
// header's time is now.
static __always_inline void submit(void *record, __u64 size) {
  __u64 now = ((struct vigil_event_header *)record)->ts_ns;
  bpf_ringbuf_submit(record,
                     wakeup_flag(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA), size, true, now));
}

// Copies a record into the ring buffer; false when it had no room. `urgent`: a typed record,
// whose header's time is now; otherwise a stream batch.
static __always_inline bool output(void *record, __u64 size, bool urgent) {
  __u64 after = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size;
  __u64 now = ((struct vigil_event_header *)record)->ts_ns;
  return bpf_ringbuf_output(&events, record, size, wakeup_flag(after, size, urgent, now)) == 0;
}

static __always_inline void count_n(__u32 cause, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&counters, &cause);
  if (v) *v += n;
}

static __always_inline void count(__u32 cause) { count_n(cause, 1); }

static __always_inline struct vigil_config *get_config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&settings, &zero);
}

// Where this CPU builds a file record before it is copied into the ring buffer with the length
// it needs: a record without a second path ends after the first path's NUL (the header, 24 bytes
// and the path: ~110 bytes for a typical open instead of 592), so the ring holds ~5x more opens
// before it is full. Same rule as `stream`: programs of one CPU do not interleave here.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vigil_file_event);
} file_scratch SEC(".maps");

static __always_inline struct vigil_stream_state *get_stream(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&stream, &zero);
}

// True for a 32-bit (ia32) call of the current task: its number is in the i386 table.
static __always_inline bool in_compat_call(struct task_struct *task) {
  return (task->thread_info.status & TS_COMPAT) != 0;
}

// Who is running: read once per record (once per batch for the stream).
struct who {
  __u64 pid_tgid;
  __u64 cgroup_id;
  __u32 uid;
  __u32 pad;
  struct vigil_comm_key comm;
};

static __always_inline void get_who(struct who *w, __u64 pid_tgid) {
  w->pid_tgid = pid_tgid;
  w->uid = (__u32)bpf_get_current_uid_gid();
  w->cgroup_id = bpf_get_current_cgroup_id();
  bpf_get_current_comm(w->comm.comm, sizeof(w->comm.comm));
}

// True when the filters let `w` through; counts `n` filtered events otherwise.
static __always_inline bool admit_n(const struct vigil_config *cfg, const struct who *w, __u64 n) {
  __u32 flags = cfg->filter_flags;
  if (!flags) return true;
  __u32 *v;
  if (flags & (VIGIL_FILTER_INCLUDE_COMM | VIGIL_FILTER_EXCLUDE_COMM)) {
    v = bpf_map_lookup_elem(&filter_comm, &w->comm);
    if (v && (*v & VIGIL_FILTER_EXCLUDE)) goto out;
    if ((flags & VIGIL_FILTER_INCLUDE_COMM) && !(v && (*v & VIGIL_FILTER_INCLUDE))) goto out;
  }
  if (flags & (VIGIL_FILTER_INCLUDE_CGROUP | VIGIL_FILTER_EXCLUDE_CGROUP)) {
    v = bpf_map_lookup_elem(&filter_cgroup, &w->cgroup_id);
    if (v && (*v & VIGIL_FILTER_EXCLUDE)) goto out;
    if ((flags & VIGIL_FILTER_INCLUDE_CGROUP) && !(v && (*v & VIGIL_FILTER_INCLUDE))) goto out;
  }
  if (flags & (VIGIL_FILTER_INCLUDE_UID | VIGIL_FILTER_EXCLUDE_UID)) {
    v = bpf_map_lookup_elem(&filter_uid, &w->uid);
    if (v && (*v & VIGIL_FILTER_EXCLUDE)) goto out;
    if ((flags & VIGIL_FILTER_INCLUDE_UID) && !(v && (*v & VIGIL_FILTER_INCLUDE))) goto out;
  }
  return true;
out:
  count_n(VIGIL_CNT_FILTERED, n);
  return false;
}

static __always_inline bool admit(const struct vigil_config *cfg, const struct who *w) {
  return admit_n(cfg, w, 1);
}

static __always_inline void fill_header(struct vigil_event_header *h, __u16 type, __u16 size,
                                        const struct who *w, __u64 ts_ns) {
  struct task_struct *task = bpf_get_current_task_btf();
  h->type = type;
  h->size = size;
  h->cpu = bpf_get_smp_processor_id();
  h->ts_ns = ts_ns;
  h->pid = (__u32)w->pid_tgid;
  h->tgid = w->pid_tgid >> 32;
  h->ppid = task->real_parent->tgid;
  h->uid = w->uid;
  h->cgroup_id = w->cgroup_id;
  __builtin_memcpy(h->comm, w->comm.comm, VIGIL_COMM_LEN);
}

// Sends this CPU's batch (when it holds calls) and empties it. `forget` also drops the cached
// filter decision (after an exec or a credential change the thread may filter differently).
static __always_inline void flush_stream(struct vigil_stream_state *st, bool forget) {
  if (forget) st->tid = 0;
  __u32 n = st->batch.count;
  if (n == 0) return;
  if (n > VIGIL_SYSCALL_BATCH) n = VIGIL_SYSCALL_BATCH;  // cannot happen; bounds the size
  __u32 size = offsetof(struct vigil_syscall_batch, calls) + n * sizeof(struct vigil_syscall_call);
  st->batch.count = n;
  st->batch.hdr.size = (__u16)size;
  if (!output(&st->batch, size, false)) count_n(VIGIL_CNT_RINGBUF_FULL, n);
  st->batch.count = 0;
}

// Every record other than the stream's goes through here first: this CPU's pending calls are
// sent before it, so that records of one CPU stay in order.
static __always_inline void flush_stream_here(bool forget) {
  struct vigil_stream_state *st = get_stream();
  if (st) flush_stream(st, forget);
}

// Appends one completed call of the current thread to this CPU's batch.
static __always_inline void stream_call(const struct vigil_config *cfg, __u64 pid_tgid, __u32 nr,
                                        long ret) {
  struct vigil_stream_state *st = get_stream();
  if (!st) return;
  __u32 tid = (__u32)pid_tgid;
  if (st->tid != tid || st->generation != cfg->generation) {
    flush_stream(st, true);
    struct who w;
    get_who(&w, pid_tgid);
    st->tid = tid;
    st->generation = cfg->generation;
    st->admitted = admit_n(cfg, &w, 0) ? 1 : 0;
  }
  if (!st->admitted) {
    count(VIGIL_CNT_FILTERED);
    return;
  }
  // A batch's first call gets a precise time; the calls after it get the whole ticks that
  // surely passed since then (the kernel tick: 4 ms at HZ=250): one fewer than the jiffies that
  // changed, so that no call is timed later than it was and a thread's next batch, timed
  // precisely, never starts before its last (counting every changed jiffy put calls up to a tick
  // late, and out of order with the next batch). A precise clock read cost ~60 ns here, a fifth
  // of the stream's whole cost per call. Without a known tick rate every call reads the clock.
  __u32 n = st->batch.count;
  __u64 delta = 0;
  if (n > 0) {
    __u64 ticks = bpf_jiffies64() - st->jiffies0;
    delta = CONFIG_HZ > 0 ? (ticks > 0 ? ticks - 1 : 0) * (1000000000ull / CONFIG_HZ)
                          : bpf_ktime_get_ns() - st->batch.hdr.ts_ns;
    if (delta >= BATCH_MAX_AGE_NS) {
      flush_stream(st, false);
      n = 0;
      delta = 0;
    }
  }
  if (n == 0) {
    struct who w;
    get_who(&w, pid_tgid);
    st->jiffies0 = bpf_jiffies64();
    fill_header(&st->batch.hdr, VIGIL_EV_SYSCALLS, 0, &w, bpf_ktime_get_ns());
    st->batch.reserved = 0;
  }
  if (n >= VIGIL_SYSCALL_BATCH) return;  // cannot happen: a full batch is sent at once
  struct vigil_syscall_call *c = &st->batch.calls[n];
  c->ts_delta_ns = (__u32)delta;
  c->nr = nr;
  c->ret = ret;
  st->batch.count = n + 1;
  if (n + 1 == VIGIL_SYSCALL_BATCH) flush_stream(st, false);
}

// The typed-record bit of each x86_64 system call number (0: none), looked up with one load
// instead of a chain of comparisons on every call.
#define NR_TABLE 448
static const __u16 typed_table[NR_TABLE] = {
    [NR_EXECVE] = VIGIL_TYPED_EXECVE,     [NR_EXECVEAT] = VIGIL_TYPED_EXECVE,
    [NR_OPEN] = VIGIL_TYPED_OPEN,         [NR_OPENAT] = VIGIL_TYPED_OPEN,
    [NR_OPENAT2] = VIGIL_TYPED_OPEN,      [NR_UNLINK] = VIGIL_TYPED_FILE_MOD,
    [NR_UNLINKAT] = VIGIL_TYPED_FILE_MOD, [NR_RENAME] = VIGIL_TYPED_FILE_MOD,
    [NR_RENAMEAT] = VIGIL_TYPED_FILE_MOD, [NR_RENAMEAT2] = VIGIL_TYPED_FILE_MOD,
    [NR_CONNECT] = VIGIL_TYPED_NET,       [NR_ACCEPT] = VIGIL_TYPED_NET,
    [NR_ACCEPT4] = VIGIL_TYPED_NET,       [NR_BIND] = VIGIL_TYPED_NET,
    [NR_SETUID] = VIGIL_TYPED_CRED,       [NR_SETGID] = VIGIL_TYPED_CRED,
    [NR_SETREUID] = VIGIL_TYPED_CRED,     [NR_SETREGID] = VIGIL_TYPED_CRED,
    [NR_SETRESUID] = VIGIL_TYPED_CRED,    [NR_SETRESGID] = VIGIL_TYPED_CRED,
    [NR_SETFSUID] = VIGIL_TYPED_CRED,     [NR_SETFSGID] = VIGIL_TYPED_CRED,
    [NR_PTRACE] = VIGIL_TYPED_PTRACE,     [NR_MOUNT] = VIGIL_TYPED_MOUNT,
    [NR_UMOUNT2] = VIGIL_TYPED_MOUNT,     [NR_LINK] = VIGIL_TYPED_FILE_MOD,
    [NR_LINKAT] = VIGIL_TYPED_FILE_MOD,   [NR_SYMLINK] = VIGIL_TYPED_FILE_MOD,
    [NR_SYMLINKAT] = VIGIL_TYPED_FILE_MOD, [NR_SOCKET] = VIGIL_TYPED_NET,
};

static __always_inline __u32 typed_bit(long nr) {
  if (nr < 0 || nr >= NR_TABLE) return 0;
  return typed_table[nr];
}

// Copies a user string into dst[size]; returns the bytes used, its NUL included (1 when empty or
// unreadable).
static __always_inline __u32 read_user_str(char *dst, __u32 size, __u64 src) {
  long n = src ? bpf_probe_read_user_str(dst, size, (const void *)src) : 0;
  if (n <= 0) {
    dst[0] = '\0';
    if (src) count(VIGIL_CNT_STR_READ);
    return 1;
  }
  return (__u32)n;
}

// Copies a user sockaddr (AF_INET/AF_INET6 address and port) into `e`.
static __always_inline void read_sockaddr(struct vigil_net_event *e, __u64 uaddr) {
  e->family = 0;
  e->port = 0;
  __builtin_memset(e->addr, 0, sizeof(e->addr));
  if (!uaddr) return;
  __u16 family = 0;
  if (bpf_probe_read_user(&family, sizeof(family), (const void *)uaddr) < 0) {
    count(VIGIL_CNT_ADDR_READ);
    return;
  }
  e->family = family;
  if (family == AF_INET) {
    struct sockaddr_in sin;
    if (bpf_probe_read_user(&sin, sizeof(sin), (const void *)uaddr) < 0) {
      count(VIGIL_CNT_ADDR_READ);
      return;
    }
    e->port = bpf_ntohs(sin.sin_port);
    __builtin_memcpy(e->addr, &sin.sin_addr, 4);
  } else if (family == AF_INET6) {
    struct sockaddr_in6 sin6;
    if (bpf_probe_read_user(&sin6, sizeof(sin6), (const void *)uaddr) < 0) {
      count(VIGIL_CNT_ADDR_READ);
      return;
    }
    e->port = bpf_ntohs(sin6.sin6_port);
    __builtin_memcpy(e->addr, &sin6.sin6_addr, 16);
  }
}

// The IPPROTO_* of the socket behind `fd` of `task`; 0 when fd is not a socket or unreadable.
static __always_inline __u8 socket_protocol(struct task_struct *task, int fd) {
  if (fd < 0) return 0;
  struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
  if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
  struct file **fds = BPF_CORE_READ(fdt, fd);
  struct file *f = NULL;
  if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0 || !f) return 0;
  if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK) return 0;
  struct socket *sock = (struct socket *)BPF_CORE_READ(f, private_data);
  if (!sock) return 0;
  return (__u8)BPF_CORE_READ(sock, sk, sk_protocol);
}

// Fills the path, flags and dfd of a file record of call `nr` (not execve) from its arguments.
// Returns the record's length: it ends after the first path's NUL when there is no second path
// (path2 is then not sent; user space reads it as empty), else the whole struct.
static __always_inline __u32 file_args(struct vigil_file_event *e, long nr, __u64 a0, __u64 a1,
                                      __u64 a2, __u64 a3, __u64 a4) {
  __u64 path = a0, path2 = 0;
  e->nr = (__u32)nr;
  e->dfd = AT_FDCWD;
  e->flags = 0;
  e->mode = 0;
  if (nr == NR_OPEN) {
    e->flags = (__u32)a1;
    e->mode = (__u32)a2;
  } else if (nr == NR_OPENAT) {
    e->dfd = (__s32)a0;
    path = a1;
    e->flags = (__u32)a2;
    e->mode = (__u32)a3;
  } else if (nr == NR_OPENAT2) {
    struct open_how how = {};
    e->dfd = (__s32)a0;
    path = a1;
    if (a2 && bpf_probe_read_user(&how, sizeof(how), (const void *)a2) == 0) {
      e->flags = (__u32)how.flags;
      e->mode = (__u32)how.mode;
    }
  } else if (nr == NR_EXECVEAT) {
    e->dfd = (__s32)a0;
    path = a1;
    e->flags = (__u32)a4;
  } else if (nr == NR_UNLINKAT) {
    e->dfd = (__s32)a0;
    path = a1;
    e->flags = (__u32)a2;
  } else if (nr == NR_RENAME) {
    path2 = a1;
  } else if (nr == NR_RENAMEAT || nr == NR_RENAMEAT2) {
    e->dfd = (__s32)a0;
    path = a1;
    path2 = a3;
    if (nr == NR_RENAMEAT2) e->flags = (__u32)a4;
  } else if (nr == NR_LINK || nr == NR_SYMLINK) {
    path2 = a1;  // link(oldpath, newpath), symlink(target, linkpath)
  } else if (nr == NR_LINKAT) {
    e->dfd = (__s32)a0;  // the old path's dirfd
    path = a1;
    path2 = a3;
    e->flags = (__u32)a4;
  } else if (nr == NR_SYMLINKAT) {
    e->dfd = (__s32)a1;  // the link path's dirfd; the target is stored as given
    path2 = a2;
  }
  __u32 len = read_user_str(e->path, sizeof(e->path), path);
  if (path2) {
    read_user_str(e->path2, sizeof(e->path2), path2);
    return sizeof(*e);
  }
  if (len < 1) len = 1;  // bounds for the verifier: 1..VIGIL_PATH_LEN
  if (len > VIGIL_PATH_LEN) len = VIGIL_PATH_LEN;
  return offsetof(struct vigil_file_event, path) + len;
}

// Emits the typed record of call `nr` at its return: the arguments are still in the registers
// saved at entry, and user memory (paths, socket addresses) is read now. A successful execve's
// record comes from sched_process_exec instead (the caller's image is gone by its return).
static __always_inline void emit_typed(const struct who *w, long nr, struct pt_regs *regs,
                                       long ret) {
  __u64 a0 = regs->di, a1 = regs->si, a2 = regs->dx, a3 = regs->r10, a4 = regs->r8;
  __u64 now = bpf_ktime_get_ns();
  switch (nr) {
    case NR_EXECVE:
    case NR_EXECVEAT:
    case NR_OPEN:
    case NR_OPENAT:
    case NR_OPENAT2:
    case NR_UNLINK:
    case NR_UNLINKAT:
    case NR_RENAME:
    case NR_RENAMEAT:
    case NR_RENAMEAT2:
    case NR_LINK:
    case NR_LINKAT:
    case NR_SYMLINK:
    case NR_SYMLINKAT: {
      __u32 zero = 0;
      struct vigil_file_event *e = bpf_map_lookup_elem(&file_scratch, &zero);
      if (!e) return;
      fill_header(&e->hdr, VIGIL_EV_FILE, 0, w, now);
      __u32 size = file_args(e, nr, a0, a1, a2, a3, a4);
      if (size > sizeof(*e)) size = sizeof(*e);  // cannot happen; bounds the copy
      e->hdr.size = (__u16)size;
      e->ret = ret;
      if (!output(e, size, true)) goto full;
      return;
    }
    case NR_CONNECT:
    case NR_ACCEPT:
    case NR_ACCEPT4:
    case NR_BIND: {
      struct vigil_net_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      fill_header(&e->hdr, VIGIL_EV_NET, sizeof(*e), w, now);
      e->ret = ret;
      e->nr = (__u32)nr;
      e->fd = (__s32)a0;
      __builtin_memset(e->reserved, 0, sizeof(e->reserved));
      // accept/accept4: the kernel wrote the peer address there (when the caller asked).
      bool have_addr = nr == NR_CONNECT || nr == NR_BIND || ret >= 0;
      read_sockaddr(e, have_addr ? a1 : 0);
      e->protocol = socket_protocol(bpf_get_current_task_btf(), (int)a0);
      submit(e, sizeof(*e));
      return;
    }
    case NR_SOCKET: {
      struct vigil_net_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      fill_header(&e->hdr, VIGIL_EV_NET, sizeof(*e), w, now);
      e->ret = ret;
      e->nr = (__u32)nr;
      e->fd = (__s32)ret;
      e->family = (__u16)a0;
      e->port = (__u16)a1;
      e->protocol = (__u8)a2;
      __builtin_memset(e->reserved, 0, sizeof(e->reserved));
      __builtin_memset(e->addr, 0, sizeof(e->addr));
      submit(e, sizeof(*e));
      return;
    }
    case NR_MOUNT:
    case NR_UMOUNT2: {
      struct vigil_mount_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      fill_header(&e->hdr, VIGIL_EV_MOUNT, sizeof(*e), w, now);
      e->ret = ret;
      e->nr = (__u32)nr;
      e->reserved = 0;
      if (nr == NR_MOUNT) {
        read_user_str(e->source, sizeof(e->source), a0);
        read_user_str(e->target, sizeof(e->target), a1);
        read_user_str(e->fstype, sizeof(e->fstype), a2);
        e->flags = a3;
      } else {
        e->source[0] = '\0';
        read_user_str(e->target, sizeof(e->target), a0);
        e->fstype[0] = '\0';
        e->flags = a1;
      }
      submit(e, sizeof(*e));
      return;
    }
    default: {  // setuid family and ptrace
      struct vigil_cred_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      fill_header(&e->hdr, VIGIL_EV_CRED, sizeof(*e), w, now);
      e->ret = ret;
      e->nr = (__u32)nr;
      e->reserved = 0;
      e->args[0] = a0;
      e->args[1] = a1;
      e->args[2] = a2;
      e->args[3] = a3;
      submit(e, sizeof(*e));
      return;
    }
  }
full:
  count(VIGIL_CNT_RINGBUF_FULL);
}

// The typed record of a successful execve/execveat, sent from sched_process_exec: past this
// point the exec cannot fail, and the caller's image (where the path was) is already gone, so
// the path is the kernel's copy (bprm->filename; for execveat with a relative path and a dirfd
// that is "/dev/fd/<dirfd>/<path>"). The call's registers still hold dirfd and flags.
static __always_inline void emit_exec_success(const struct who *w, struct task_struct *task,
                                              struct linux_binprm *bprm) {
  if (in_compat_call(task)) return;  // i386 numbering: no typed records
  struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
  if (!regs) return;
  long nr = regs->orig_ax;
  if (nr != NR_EXECVE && nr != NR_EXECVEAT) return;
  struct vigil_file_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return;
  }
  fill_header(&e->hdr, VIGIL_EV_FILE, sizeof(*e), w, bpf_ktime_get_ns());
  e->ret = 0;
  e->nr = (__u32)nr;
  e->dfd = nr == NR_EXECVEAT ? (__s32)regs->di : AT_FDCWD;
  e->flags = nr == NR_EXECVEAT ? (__u32)regs->r8 : 0;
  e->mode = 0;
  if (bpf_probe_read_kernel_str(e->path, sizeof(e->path), bprm->filename) < 0) {
    e->path[0] = '\0';
    count(VIGIL_CNT_STR_READ);
  }
  e->path2[0] = '\0';
  submit(e, sizeof(*e));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(vigil_sys_exit, struct pt_regs *regs, long ret) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg) return 0;
  long nr = regs->orig_ax;
  struct task_struct *task = bpf_get_current_task_btf();
  if (in_compat_call(task)) {  // i386 numbering: stream only, typed records are x86_64 calls
    if (cfg->syscall_stream) stream_call(cfg, pid_tgid, (__u32)nr | VIGIL_NR_I386, ret);
    return 0;
  }
  __u32 bit = typed_bit(nr);
  if ((bit & cfg->typed_mask) && !cfg->typed_per_call && !(bit == VIGIL_TYPED_EXECVE && ret == 0)) {
    struct who w;
    get_who(&w, pid_tgid);
    if (admit(cfg, &w)) emit_typed(&w, nr, regs, ret);
  }
  if (!cfg->syscall_stream) return 0;
  stream_call(cfg, pid_tgid, (__u32)nr, ret);
  // A new uid, program or comm (prctl PR_SET_NAME): the batch's identity and the cached filter
  // decision are stale.
  if ((bit & (VIGIL_TYPED_CRED | VIGIL_TYPED_EXECVE)) || nr == NR_PRCTL) flush_stream_here(true);
  return 0;
}

// A context switch: the calls gathered on this CPU are sent before anything else can run here,
// so a thread's calls stay in order when it moves to another CPU, and an idle CPU holds nothing.
// The filter decision is forgotten too: it is only ever reused while one thread keeps the CPU.
SEC("tp_btf/sched_switch")
int BPF_PROG(vigil_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next) {
  struct vigil_stream_state *st = get_stream();
  if (st && (st->tid | st->batch.count)) flush_stream(st, true);
  return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_sched_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  flush_stream_here(true);
  struct vigil_config *cfg = get_config();
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_EXEC)) return 0;
  struct who w;
  get_who(&w, pid_tgid);
  if (!admit(cfg, &w)) return 0;
  struct vigil_exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_EXEC, sizeof(*e), &w, bpf_ktime_get_ns());
  e->old_pid = (__u32)old_pid;
  e->loginuid = 0xffffffffu;
  if (bpf_core_field_exists(task->loginuid)) e->loginuid = BPF_CORE_READ(task, loginuid.val);
  e->tty = 0;
  struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
  if (tty) {
    __u32 major = (__u32)BPF_CORE_READ(tty, driver, major);
    __u32 minor = (__u32)BPF_CORE_READ(tty, driver, minor_start) + (__u32)BPF_CORE_READ(tty, index);
    e->tty = (major << 20) | (minor & 0xfffff);
  }
  e->reserved = 0;
  // kernel_cap_t is 64 bits, as a u64 (6.3+) or as u32[2] (older): the same bytes either way.
  const struct cred *cred = BPF_CORE_READ(task, cred);
  e->cap_effective = 0;
  e->cap_permitted = 0;
  bpf_probe_read_kernel(&e->cap_effective, sizeof(e->cap_effective), &cred->cap_effective);
  bpf_probe_read_kernel(&e->cap_permitted, sizeof(e->cap_permitted), &cred->cap_permitted);
  e->exe_flags = 0;
  char dname[8] = {};
  const unsigned char *dn = BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name);
  if (dn && bpf_probe_read_kernel(dname, 6, dn) == 0 && dname[0] == 'm' && dname[1] == 'e' &&
      dname[2] == 'm' && dname[3] == 'f' && dname[4] == 'd' && dname[5] == ':')
    e->exe_flags |= VIGIL_EXE_MEMFD;
  const char *filename = bprm->filename;
  if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename) < 0) {
    e->filename[0] = '\0';
    count(VIGIL_CNT_STR_READ);
  }
  struct mm_struct *mm = task->mm;
  __u64 start = mm->arg_start;
  __u64 end = mm->arg_end;
  __u64 len = end > start ? end - start : 0;
  if (len > VIGIL_ARGS_LEN) {
    len = VIGIL_ARGS_LEN;
    count(VIGIL_CNT_ARGS_TRUNCATED);
  }
  e->args_len = 0;
  if (len > 0 && bpf_probe_read_user(e->args, len, (const void *)start) == 0)
    e->args_len = (__u32)len;
  else if (len > 0)
    count(VIGIL_CNT_STR_READ);
  submit(e, sizeof(*e));
  if (cfg->typed_mask & VIGIL_TYPED_EXECVE) emit_exec_success(&w, task, bprm);
  return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_sched_fork, struct task_struct *parent, struct task_struct *child) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_FORK)) return 0;
  __u32 child_pid = child->pid;
  __u32 child_tgid = child->tgid;
  if (child_pid != child_tgid) return 0;  // a new thread, not a new process
  flush_stream_here(false);
  struct who w;
  get_who(&w, pid_tgid);
  if (!admit(cfg, &w)) return 0;
  struct vigil_fork_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_FORK, sizeof(*e), &w, bpf_ktime_get_ns());
  e->child_pid = child_pid;
  e->child_tgid = child_tgid;
  submit(e, sizeof(*e));
  return 0;
}

// exit and exit_group never return: their stream entry is made here, when the thread that called
// them exits. A thread killed by a signal (low 7 bits of exit_code) called neither.
static __always_inline void stream_exit_call(const struct vigil_config *cfg, __u64 pid_tgid,
                                             struct task_struct *task) {
  if (!cfg->syscall_stream || (task->exit_code & 0x7f) != 0) return;
  struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
  if (!regs) return;
  long nr = regs->orig_ax;
  if (in_compat_call(task)) {
    if (nr == NR_I386_EXIT || nr == NR_I386_EXIT_GROUP)
      stream_call(cfg, pid_tgid, (__u32)nr | VIGIL_NR_I386, 0);
  } else if (nr == NR_EXIT || nr == NR_EXIT_GROUP) {
    stream_call(cfg, pid_tgid, (__u32)nr, 0);
  }
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_sched_exit, struct task_struct *task) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (cfg) stream_exit_call(cfg, pid_tgid, task);
  flush_stream_here(true);
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_EXIT)) return 0;
  // signal->live is decremented before the tracepoint: 0 means the whole process is gone.
  if (task->signal->live.counter != 0) return 0;
  struct who w;
  get_who(&w, pid_tgid);
  if (!admit(cfg, &w)) return 0;
  struct vigil_exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_EXIT, sizeof(*e), &w, bpf_ktime_get_ns());
  e->exit_code = (__u32)task->exit_code;
  e->reserved = 0;
  submit(e, sizeof(*e));
  return 0;
}

// --- Typed records without the stream --------------------------------------------------------
// A program attached to the raw sys_exit tracepoint runs on every system call: on this kind of
// machine that costs about 90 ns per call even for an empty program. With the stream off the
// loader attaches these instead, one per typed call on its own syscalls/sys_exit_<call>
// tracepoint (the kernel tests a bitmap and runs nothing for the other calls), and sets
// typed_per_call so that exactly one of the two paths sends each record while both are attached
// during a switch. The arguments are read from the registers saved at entry, as in sys_exit.
static __always_inline int typed_exit(long nr, long ret) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg || !cfg->typed_per_call) return 0;
  __u32 bit = typed_bit(nr);
  if (!(bit & cfg->typed_mask) || (bit == VIGIL_TYPED_EXECVE && ret == 0)) return 0;
  struct task_struct *task = bpf_get_current_task_btf();
  if (in_compat_call(task)) return 0;  // i386 numbering: its own tracepoints, no typed records
  struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
  if (!regs) return 0;
  struct who w;
  get_who(&w, pid_tgid);
  if (admit(cfg, &w)) emit_typed(&w, nr, regs, ret);
  return 0;
}

#define VIGIL_TYPED_EXIT(call, nr)                                                 \
  SEC("tracepoint/syscalls/sys_exit_" #call)                                     \
  int vigil_exit_##call(struct trace_event_raw_sys_exit *ctx) {                  \
    return typed_exit(nr, ctx->ret);                                             \
  }

VIGIL_TYPED_EXIT(execve, NR_EXECVE)
VIGIL_TYPED_EXIT(execveat, NR_EXECVEAT)
VIGIL_TYPED_EXIT(open, NR_OPEN)
VIGIL_TYPED_EXIT(openat, NR_OPENAT)
VIGIL_TYPED_EXIT(openat2, NR_OPENAT2)
VIGIL_TYPED_EXIT(unlink, NR_UNLINK)
VIGIL_TYPED_EXIT(unlinkat, NR_UNLINKAT)
VIGIL_TYPED_EXIT(rename, NR_RENAME)
VIGIL_TYPED_EXIT(renameat, NR_RENAMEAT)
VIGIL_TYPED_EXIT(renameat2, NR_RENAMEAT2)
VIGIL_TYPED_EXIT(link, NR_LINK)
VIGIL_TYPED_EXIT(linkat, NR_LINKAT)
VIGIL_TYPED_EXIT(symlink, NR_SYMLINK)
VIGIL_TYPED_EXIT(symlinkat, NR_SYMLINKAT)
VIGIL_TYPED_EXIT(socket, NR_SOCKET)
VIGIL_TYPED_EXIT(connect, NR_CONNECT)
VIGIL_TYPED_EXIT(accept, NR_ACCEPT)
VIGIL_TYPED_EXIT(accept4, NR_ACCEPT4)
VIGIL_TYPED_EXIT(bind, NR_BIND)
VIGIL_TYPED_EXIT(setuid, NR_SETUID)
VIGIL_TYPED_EXIT(setgid, NR_SETGID)
VIGIL_TYPED_EXIT(setreuid, NR_SETREUID)
VIGIL_TYPED_EXIT(setregid, NR_SETREGID)
VIGIL_TYPED_EXIT(setresuid, NR_SETRESUID)
VIGIL_TYPED_EXIT(setresgid, NR_SETRESGID)
VIGIL_TYPED_EXIT(setfsuid, NR_SETFSUID)
VIGIL_TYPED_EXIT(setfsgid, NR_SETFSGID)
VIGIL_TYPED_EXIT(ptrace, NR_PTRACE)
VIGIL_TYPED_EXIT(mount, NR_MOUNT)
VIGIL_TYPED_EXIT(umount, NR_UMOUNT2)
