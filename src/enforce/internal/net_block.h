#pragma once

// The kernel side of block-network: the programs of bpf/vigil_netblock.bpf.c attached (through
// BPF links) to the cgroup v2 root, and their deny-list map, all pinned under a bpffs directory
// so that they outlive the process that loaded them and any later process can change the list.
// The programs are loaded with the first entry and detached when the last entry is removed.
// The caller serialises (the Enforcer's lock).

#include <cstdint>
#include <string>

#include "core/status.h"

namespace vigil::enforce::internal {

class NetBlock {
 public:
  // `cgroup_root`: the cgroup v2 mount the programs attach to; `pin_dir`: a directory in a
  // bpffs (its parent is mounted as bpffs when it is /sys/fs/bpf and nothing is mounted there).
  NetBlock(std::string cgroup_root, std::string pin_dir)
      : cgroup_root_(std::move(cgroup_root)), pin_dir_(std::move(pin_dir)) {}

  // Adds `cgroup_id` to the deny list, loading and attaching the programs when needed.
  // kAlreadyExists when the cgroup is listed already (by the action whose id the message names).
  core::Status Add(uint64_t cgroup_id, uint64_t action_id);
  // Removes the entry and returns how many connects it refused; kNotFound when it is not listed.
  // Detaches the programs when the list becomes empty.
  core::Result<uint64_t> Remove(uint64_t cgroup_id);
  // Whether the programs are attached (their pins exist).
  bool Attached() const;

 private:
  core::Result<int> MapFd(bool load);
  core::Status Detach();
  std::string cgroup_root_;
  std::string pin_dir_;
};

}  // namespace vigil::enforce::internal
