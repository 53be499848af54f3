#include "agent/policy_input.h"

#include <time.h>

namespace vigil::agent {

int64_t BootToUnixOffsetNs() {
  timespec real{}, boot{};
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_BOOTTIME, &boot);
  return (static_cast<int64_t>(real.tv_sec) - boot.tv_sec) * 1'000'000'000 +
         (real.tv_nsec - boot.tv_nsec);
}

void BuildEvalInput(const enrich::ProcessTree& tree, const core::Event& event,
                    int64_t boot_to_unix_ns, policy::EvalInput* out, size_t max_ancestors) {
  out->event = &event;
  auto self = tree.Lookup(event.proc.pid);
  if (!self.has_value()) return;
  out->argv = std::move(self->argv);
  out->user_name = std::move(self->user);
  out->cgroup = std::move(self->cgroup);
  out->cwd = std::move(self->cwd);
  out->container_id = self->container_id.empty() ? "host" : self->container_id;
  if (self->start_time_ns != enrich::kUnknownTime) {
    out->proc_start_time_ns = static_cast<int64_t>(self->start_time_ns) + boot_to_unix_ns;
  }
  for (enrich::ProcessInfo& a : tree.Ancestors(event.proc.pid, max_ancestors)) {
    out->ancestors.push_back({std::move(a.comm), std::move(a.exe), std::move(a.argv)});
  }
}

policy::EvalInput& EvalInputCache::Build(const enrich::ProcessTree& tree, const core::Event& event,
                                         int64_t boot_to_unix_ns, size_t max_ancestors) {
  // Read before the tree: a change after this read leaves the entry tagged with the older
  // generation, so the next call rebuilds it.
  const uint64_t generation = tree.generation();
  if (tree_ == &tree && pid_ == event.proc.pid && generation_ == generation &&
      boot_to_unix_ns_ == boot_to_unix_ns && max_ancestors_ == max_ancestors) {
    ++hits_;
    input_.event = &event;
    input_.verdict = nullptr;
    return input_;
  }
  ++misses_;
  memo_.Reset();
  input_ = policy::EvalInput{};
  BuildEvalInput(tree, event, boot_to_unix_ns, &input_, max_ancestors);
  tree_ = &tree;
  pid_ = event.proc.pid;
  generation_ = generation;
  boot_to_unix_ns_ = boot_to_unix_ns;
  max_ancestors_ = max_ancestors;
  return input_;
}

}  // namespace vigil::agent
