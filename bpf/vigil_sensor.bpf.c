// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Vigil's live sensor: the system call stream (raw_syscalls sys_enter/sys_exit, one record per
// completed call with its return value), process lifecycle (sched_process_exec/fork/exit) and
// typed records with arguments for security-relevant calls. Only raw_tp and tp_btf programs:
// they attach without tracefs. Records and maps: abi/vigil_events.h; docs/ebpf-sensor.md.
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

// x86_64 system call numbers of the calls with typed records.
#define NR_OPEN 2
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_BIND 49
#define NR_EXECVE 59
#define NR_EXIT 60
#define NR_RENAME 82
#define NR_UNLINK 87
#define NR_PTRACE 101
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
#define NR_ACCEPT4 288
#define NR_RENAMEAT2 316
#define NR_EXECVEAT 322
#define NR_OPENAT2 437

// Emits the BTF of the records that are only ever handled through locals, so that the layout
// test (tests/unit/sensor_ebpf/ebpf_abi_test.cc) finds every ABI struct in this object's BTF.
struct vigil_syscall_event *vigil_abi_syscall __attribute__((unused));
struct vigil_exec_event *vigil_abi_exec __attribute__((unused));
struct vigil_fork_event *vigil_abi_fork __attribute__((unused));
struct vigil_exit_event *vigil_abi_exit __attribute__((unused));

// Set by the loader before load: the agent's own process, never reported.
const volatile __u32 agent_tgid = 0;
// Records do not wake the consumer until this many bytes wait in the ring buffer; the consumer
// also looks every 10 ms. A wake-up per record (libbpf's default when the consumer is idle)
// costs a context switch per event and more than quadrupled the cost of an open here.
const volatile __u64 wakeup_bytes = 1024 * 1024;

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

// A typed call's record, built at sys_enter and completed with the return value at sys_exit.
struct pending {
  __u32 nr;
  __u32 type;
  __u64 user_addr;  // accept/accept4: where the kernel writes the peer address
  union {
    struct vigil_event_header hdr;
    struct vigil_file_event file;
    struct vigil_net_event net;
    struct vigil_cred_event cred;
    struct vigil_mount_event mount;
  } ev;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // task id
  __type(value, struct pending);
} pending SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct pending);
} scratch SEC(".maps");

static __always_inline void submit(void *record) {
  __u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(record, waiting >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline void count(__u32 cause) {
  __u64 *v = bpf_map_lookup_elem(&counters, &cause);
  if (v) *v += 1;
}

static __always_inline struct vigil_config *get_config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&settings, &zero);
}

// Who is running: read once per event, used by the filters and the header.
struct who {
  __u64 pid_tgid;
  __u64 cgroup_id;
  __u32 uid;
  __u32 pad;
  struct vigil_comm_key comm;
};

static __always_inline void get_who(struct who *w) {
  w->pid_tgid = bpf_get_current_pid_tgid();
  w->uid = (__u32)bpf_get_current_uid_gid();
  w->cgroup_id = bpf_get_current_cgroup_id();
  bpf_get_current_comm(w->comm.comm, sizeof(w->comm.comm));
}

// True when the filters let `w` through; counts a filtered event otherwise.
static __always_inline bool admit(const struct vigil_config *cfg, const struct who *w) {
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
  count(VIGIL_CNT_FILTERED);
  return false;
}

static __always_inline void fill_header(struct vigil_event_header *h, __u16 type, __u16 size,
                                        const struct who *w) {
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  h->type = type;
  h->size = size;
  h->cpu = bpf_get_smp_processor_id();
  h->ts_ns = bpf_ktime_get_ns();
  h->pid = (__u32)w->pid_tgid;
  h->tgid = w->pid_tgid >> 32;
  h->ppid = BPF_CORE_READ(task, real_parent, tgid);
  h->uid = w->uid;
  h->cgroup_id = w->cgroup_id;
  __builtin_memcpy(h->comm, w->comm.comm, VIGIL_COMM_LEN);
}

// The typed-record bit for system call `nr`, 0 when it has none.
static __always_inline __u32 typed_bit(long nr) {
  switch (nr) {
    case NR_EXECVE:
    case NR_EXECVEAT:
      return VIGIL_TYPED_EXECVE;
    case NR_OPEN:
    case NR_OPENAT:
    case NR_OPENAT2:
      return VIGIL_TYPED_OPEN;
    case NR_UNLINK:
    case NR_UNLINKAT:
    case NR_RENAME:
    case NR_RENAMEAT:
    case NR_RENAMEAT2:
      return VIGIL_TYPED_FILE_MOD;
    case NR_CONNECT:
    case NR_ACCEPT:
    case NR_ACCEPT4:
    case NR_BIND:
      return VIGIL_TYPED_NET;
    case NR_SETUID:
    case NR_SETGID:
    case NR_SETREUID:
    case NR_SETREGID:
    case NR_SETRESUID:
    case NR_SETRESGID:
    case NR_SETFSUID:
    case NR_SETFSGID:
      return VIGIL_TYPED_CRED;
    case NR_PTRACE:
      return VIGIL_TYPED_PTRACE;
    case NR_MOUNT:
    case NR_UMOUNT2:
      return VIGIL_TYPED_MOUNT;
    default:
      return 0;
  }
}

static __always_inline void read_user_str(char *dst, __u32 size, __u64 src) {
  if (!src || bpf_probe_read_user_str(dst, size, (const void *)src) < 0) {
    dst[0] = '\0';
    if (src) count(VIGIL_CNT_STR_READ);
  }
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

// Emits a syscall-stream record (used at sys_exit, and at sys_enter for calls that never return).
static __always_inline void emit_syscall(const struct who *w, long nr, long ret) {
  struct vigil_syscall_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return;
  }
  fill_header(&e->hdr, VIGIL_EV_SYSCALL, sizeof(*e), w);
  e->ret = ret;
  e->nr = (__u32)nr;
  e->reserved = 0;
  submit(e);
}

// Builds the typed record of call `nr` from its arguments and keeps it until sys_exit.
static __always_inline void capture_args(const struct who *w, long nr, struct pt_regs *regs) {
  __u32 zero = 0;
  struct pending *p = bpf_map_lookup_elem(&scratch, &zero);
  if (!p) return;
  __u64 a0 = BPF_CORE_READ(regs, di);
  __u64 a1 = BPF_CORE_READ(regs, si);
  __u64 a2 = BPF_CORE_READ(regs, dx);
  __u64 a3 = BPF_CORE_READ(regs, r10);
  __u64 a4 = BPF_CORE_READ(regs, r8);
  p->nr = (__u32)nr;
  p->user_addr = 0;
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
    case NR_RENAMEAT2: {
      struct vigil_file_event *e = &p->ev.file;
      __u64 path = a0, path2 = 0;
      p->type = VIGIL_EV_FILE;
      fill_header(&e->hdr, VIGIL_EV_FILE, sizeof(*e), w);
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
      }
      read_user_str(e->path, sizeof(e->path), path);
      if (path2)
        read_user_str(e->path2, sizeof(e->path2), path2);
      else
        e->path2[0] = '\0';
      break;
    }
    case NR_CONNECT:
    case NR_ACCEPT:
    case NR_ACCEPT4:
    case NR_BIND: {
      struct vigil_net_event *e = &p->ev.net;
      p->type = VIGIL_EV_NET;
      fill_header(&e->hdr, VIGIL_EV_NET, sizeof(*e), w);
      e->nr = (__u32)nr;
      e->fd = (__s32)a0;
      e->reserved = 0;
      if (nr == NR_CONNECT || nr == NR_BIND) {
        read_sockaddr(e, a1);
      } else {
        read_sockaddr(e, 0);
        p->user_addr = a1;  // filled by the kernel; read at exit
      }
      break;
    }
    case NR_MOUNT:
    case NR_UMOUNT2: {
      struct vigil_mount_event *e = &p->ev.mount;
      p->type = VIGIL_EV_MOUNT;
      fill_header(&e->hdr, VIGIL_EV_MOUNT, sizeof(*e), w);
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
      break;
    }
    default: {  // setuid family and ptrace
      struct vigil_cred_event *e = &p->ev.cred;
      p->type = VIGIL_EV_CRED;
      fill_header(&e->hdr, VIGIL_EV_CRED, sizeof(*e), w);
      e->nr = (__u32)nr;
      e->reserved = 0;
      e->args[0] = a0;
      e->args[1] = a1;
      e->args[2] = a2;
      e->args[3] = a3;
      break;
    }
  }
  __u32 tid = (__u32)w->pid_tgid;
  if (bpf_map_update_elem(&pending, &tid, p, BPF_ANY) < 0) count(VIGIL_CNT_PENDING_FULL);
}

// Completes the typed record kept for this task at sys_enter and submits it.
static __always_inline void emit_pending(__u32 tid, long nr, long ret) {
  struct pending *p = bpf_map_lookup_elem(&pending, &tid);
  if (!p) return;
  if (p->nr != (__u32)nr) {  // stale: its exit was never seen (e.g. the task exec'd)
    bpf_map_delete_elem(&pending, &tid);
    return;
  }
  switch (p->type) {
    case VIGIL_EV_FILE: {
      struct vigil_file_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      bpf_probe_read_kernel(e, sizeof(*e), &p->ev.file);
      e->ret = ret;
      submit(e);
      break;
    }
    case VIGIL_EV_NET: {
      struct vigil_net_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      bpf_probe_read_kernel(e, sizeof(*e), &p->ev.net);
      e->ret = ret;
      if (p->user_addr && ret >= 0) read_sockaddr(e, p->user_addr);
      submit(e);
      break;
    }
    case VIGIL_EV_CRED: {
      struct vigil_cred_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      bpf_probe_read_kernel(e, sizeof(*e), &p->ev.cred);
      e->ret = ret;
      submit(e);
      break;
    }
    case VIGIL_EV_MOUNT: {
      struct vigil_mount_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
      if (!e) goto full;
      bpf_probe_read_kernel(e, sizeof(*e), &p->ev.mount);
      e->ret = ret;
      submit(e);
      break;
    }
    default:
      break;
  }
  bpf_map_delete_elem(&pending, &tid);
  return;
full:
  count(VIGIL_CNT_RINGBUF_FULL);
  bpf_map_delete_elem(&pending, &tid);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(vigil_sys_enter, struct pt_regs *regs, long nr) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg) return 0;
  bool never_returns = nr == NR_EXIT || nr == NR_EXIT_GROUP;
  __u32 bit = typed_bit(nr) & cfg->typed_mask;
  if (!bit && !(never_returns && cfg->syscall_stream)) return 0;
  struct who w;
  get_who(&w);
  if (!admit(cfg, &w)) return 0;
  if (bit) capture_args(&w, nr, regs);
  if (never_returns) emit_syscall(&w, nr, 0);
  return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(vigil_sys_exit, struct pt_regs *regs, long ret) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg) return 0;
  long nr = BPF_CORE_READ(regs, orig_ax);
  // A pending record exists only if the call was admitted at sys_enter.
  if (typed_bit(nr)) emit_pending((__u32)pid_tgid, nr, ret);
  if (!cfg->syscall_stream) return 0;
  struct who w;
  get_who(&w);
  if (!admit(cfg, &w)) return 0;
  emit_syscall(&w, nr, ret);
  return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_sched_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_EXEC)) return 0;
  struct who w;
  get_who(&w);
  if (!admit(cfg, &w)) return 0;
  struct vigil_exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_EXEC, sizeof(*e), &w);
  e->old_pid = (__u32)old_pid;
  const char *filename = BPF_CORE_READ(bprm, filename);
  if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename) < 0) {
    e->filename[0] = '\0';
    count(VIGIL_CNT_STR_READ);
  }
  struct mm_struct *mm = BPF_CORE_READ(task, mm);
  __u64 start = BPF_CORE_READ(mm, arg_start);
  __u64 end = BPF_CORE_READ(mm, arg_end);
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
  submit(e);
  return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_sched_fork, struct task_struct *parent, struct task_struct *child) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_FORK)) return 0;
  __u32 child_pid = BPF_CORE_READ(child, pid);
  __u32 child_tgid = BPF_CORE_READ(child, tgid);
  if (child_pid != child_tgid) return 0;  // a new thread, not a new process
  struct who w;
  get_who(&w);
  if (!admit(cfg, &w)) return 0;
  struct vigil_fork_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_FORK, sizeof(*e), &w);
  e->child_pid = child_pid;
  e->child_tgid = child_tgid;
  submit(e);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_sched_exit, struct task_struct *task) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)(pid_tgid >> 32) == agent_tgid) return 0;
  struct vigil_config *cfg = get_config();
  if (!cfg || !(cfg->typed_mask & VIGIL_TYPED_EXIT)) return 0;
  // signal->live is decremented before the tracepoint: 0 means the whole process is gone.
  if (BPF_CORE_READ(task, signal, live.counter) != 0) return 0;
  struct who w;
  get_who(&w);
  if (!admit(cfg, &w)) return 0;
  struct vigil_exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(VIGIL_CNT_RINGBUF_FULL);
    return 0;
  }
  fill_header(&e->hdr, VIGIL_EV_EXIT, sizeof(*e), &w);
  e->exit_code = (__u32)BPF_CORE_READ(task, exit_code);
  e->reserved = 0;
  submit(e);
  return 0;
}
