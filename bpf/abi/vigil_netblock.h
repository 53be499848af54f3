/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The deny list that bpf/vigil_netblock.bpf.c reads and src/enforce/net_block.cc writes.
 * Compiled by clang -target bpf (after vmlinux.h) and by the C++ compiler; fixed-width fields,
 * naturally aligned, no padding. Spec: docs/enforcement.md.
 */
#ifndef VIGIL_BPF_ABI_VIGIL_NETBLOCK_H_
#define VIGIL_BPF_ABI_VIGIL_NETBLOCK_H_

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Deny-list capacity (cgroups blocked at once). */
#define VIGIL_NETBLOCK_MAX_CGROUPS 4096
/* A connect is checked against the caller's cgroup and its ancestors up to this depth. */
#define VIGIL_NETBLOCK_MAX_LEVEL 16

/* Value of the deny-list map vigil_net_deny, keyed by the cgroup v2 id (__u64, the inode
 * number of the cgroup's directory). */
struct vigil_netblock_entry {
  __u64 action_id; /* the enforcement ledger's id of the block-network action */
  __u64 denied;    /* connects refused so far (updated by the program) */
};

#endif /* VIGIL_BPF_ABI_VIGIL_NETBLOCK_H_ */
