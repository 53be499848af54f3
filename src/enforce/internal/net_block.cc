#include "enforce/internal/net_block.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "abi/vigil_netblock.h"
#include "vigil_netblock.skel.h"

namespace vigil::enforce::internal {
namespace {

constexpr const char* kLinkNames[] = {"connect4", "connect6", "sendmsg4", "sendmsg6"};

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

core::Status EnsureBpffs(const std::string& pin_dir) {
  const std::string parent = Parent(pin_dir);
  struct statfs fs {};
  if (statfs(parent.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return core::Status::Ok();
  if (parent != "/sys/fs/bpf") {
    return core::FailedPrecondition(parent + " is not a bpffs mount (block-network pins its "
                                             "programs there)");
  }
  if (mount("bpf", parent.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
    return core::ErrnoError(errno, "no bpffs at /sys/fs/bpf and mounting one failed");
  }
  spdlog::warn("enforce: no bpffs was mounted at /sys/fs/bpf; mounted it");
  return core::Status::Ok();
}

// Closes a file descriptor when it leaves scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

bool NetBlock::Attached() const { return access((pin_dir_ + "/net_deny").c_str(), F_OK) == 0; }

core::Result<int> NetBlock::MapFd(bool load) {
  const std::string map_pin = pin_dir_ + "/net_deny";
  if (access(map_pin.c_str(), F_OK) == 0) {
    const int fd = bpf_obj_get(map_pin.c_str());
    if (fd < 0) return core::ErrnoError(errno, "opening the pinned deny list " + map_pin);
    return fd;
  }
  if (!load) return core::NotFound("the block-network programs are not attached");
  VIGIL_RETURN_IF_ERROR(EnsureBpffs(pin_dir_));
  if (mkdir(pin_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return core::ErrnoError(errno, "creating " + pin_dir_);
  }
  Fd cg{open(cgroup_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (cg.fd < 0) return core::ErrnoError(errno, "opening cgroup root " + cgroup_root_);
  vigil_netblock_bpf* skel = vigil_netblock_bpf__open_and_load();
  if (skel == nullptr) {
    return core::ErrnoError(errno, "loading the block-network BPF programs (cgroup/connect4, "
                                   "connect6, sendmsg4, sendmsg6)");
  }
  bpf_program* progs[] = {skel->progs.vigil_block_connect4, skel->progs.vigil_block_connect6,
                          skel->progs.vigil_block_sendmsg4, skel->progs.vigil_block_sendmsg6};
  core::Status st;
  for (size_t i = 0; i < std::size(progs) && st.ok(); ++i) {
    bpf_link* link = bpf_program__attach_cgroup(progs[i], cg.fd);
    if (link == nullptr) {
      st = core::ErrnoError(errno, std::string("attaching cgroup/") + kLinkNames[i] + " to " +
                                       cgroup_root_);
      break;
    }
    const std::string pin = pin_dir_ + "/" + kLinkNames[i];
    if (bpf_link__pin(link, pin.c_str()) != 0) {
      st = core::ErrnoError(errno, "pinning " + pin);
    }
    bpf_link__destroy(link);  // the pin keeps it attached
  }
  if (st.ok() && bpf_map__pin(skel->maps.vigil_net_deny, map_pin.c_str()) != 0) {
    st = core::ErrnoError(errno, "pinning " + map_pin);
  }
  const int fd = st.ok() ? dup(bpf_map__fd(skel->maps.vigil_net_deny)) : -1;
  vigil_netblock_bpf__destroy(skel);
  if (!st.ok()) {
    (void)Detach();  // best effort: leave nothing half attached
    return st;
  }
  if (fd < 0) return core::ErrnoError(errno, "duplicating the deny-list map descriptor");
  return fd;
}

core::Status NetBlock::Detach() {
  core::Status first;
  for (const char* name : kLinkNames) {
    const std::string pin = pin_dir_ + "/" + name;
    if (unlink(pin.c_str()) != 0 && errno != ENOENT && first.ok()) {
      first = core::ErrnoError(errno, "unpinning " + pin);
    }
  }
  const std::string map_pin = pin_dir_ + "/net_deny";
  if (unlink(map_pin.c_str()) != 0 && errno != ENOENT && first.ok()) {
    first = core::ErrnoError(errno, "unpinning " + map_pin);
  }
  if (rmdir(pin_dir_.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && first.ok()) {
    first = core::ErrnoError(errno, "removing " + pin_dir_);
  }
  return first;
}

core::Status NetBlock::Add(uint64_t cgroup_id, uint64_t action_id) {
  auto fd = MapFd(/*load=*/true);
  if (!fd.has_value()) return fd.error();
  Fd map{*fd};
  vigil_netblock_entry e{};
  if (bpf_map_lookup_elem(map.fd, &cgroup_id, &e) == 0) {
    return core::Status(core::StatusCode::kAlreadyExists,
                        "cgroup id " + std::to_string(cgroup_id) +
                            " is already blocked by action " + std::to_string(e.action_id));
  }
  e = vigil_netblock_entry{action_id, 0};
  if (bpf_map_update_elem(map.fd, &cgroup_id, &e, BPF_NOEXIST) != 0) {
    return core::ErrnoError(errno, "adding cgroup id " + std::to_string(cgroup_id) +
                                       " to the deny list");
  }
  return core::Status::Ok();
}

core::Result<uint64_t> NetBlock::Remove(uint64_t cgroup_id) {
  auto fd = MapFd(/*load=*/false);
  if (!fd.has_value()) return fd.error();
  Fd map{*fd};
  vigil_netblock_entry e{};
  if (bpf_map_lookup_elem(map.fd, &cgroup_id, &e) != 0) {
    return core::NotFound("cgroup id " + std::to_string(cgroup_id) + " is not in the deny list");
  }
  if (bpf_map_delete_elem(map.fd, &cgroup_id) != 0) {
    return core::ErrnoError(errno, "removing cgroup id " + std::to_string(cgroup_id) +
                                       " from the deny list");
  }
  uint64_t next = 0;
  if (bpf_map_get_next_key(map.fd, nullptr, &next) != 0 && errno == ENOENT) {
    VIGIL_RETURN_IF_ERROR(Detach());
  }
  return e.denied;
}

}  // namespace vigil::enforce::internal
