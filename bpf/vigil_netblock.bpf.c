// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Vigil's block-network action: cgroup/connect4 and cgroup/connect6 programs attached to the
// root of the cgroup v2 hierarchy. A connect() (or sendmsg on an unconnected UDP socket) from
// a task whose cgroup, or any ancestor of it, is in the deny list fails with EPERM; everything
// else passes. User space (src/enforce/net_block.cc) adds and removes deny-list entries.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "abi/vigil_netblock.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, VIGIL_NETBLOCK_MAX_CGROUPS);
  __type(key, __u64);
  __type(value, struct vigil_netblock_entry);
} vigil_net_deny SEC(".maps");

// 1: allow, 0: refuse (the caller gets EPERM).
static __always_inline int vigil_decide(void) {
  __u64 id = bpf_get_current_cgroup_id();
  struct vigil_netblock_entry* e = bpf_map_lookup_elem(&vigil_net_deny, &id);
  if (e == 0) {
#pragma unroll
    for (int level = 1; level < VIGIL_NETBLOCK_MAX_LEVEL; level++) {
      id = bpf_get_current_ancestor_cgroup_id(level);
      if (id == 0) break;
      e = bpf_map_lookup_elem(&vigil_net_deny, &id);
      if (e != 0) break;
    }
  }
  if (e == 0) return 1;
  __sync_fetch_and_add(&e->denied, 1);
  return 0;
}

SEC("cgroup/connect4")
int vigil_block_connect4(struct bpf_sock_addr* ctx) { return vigil_decide(); }

SEC("cgroup/connect6")
int vigil_block_connect6(struct bpf_sock_addr* ctx) { return vigil_decide(); }

SEC("cgroup/sendmsg4")
int vigil_block_sendmsg4(struct bpf_sock_addr* ctx) { return vigil_decide(); }

SEC("cgroup/sendmsg6")
int vigil_block_sendmsg6(struct bpf_sock_addr* ctx) { return vigil_decide(); }
