#pragma once

// What the decision engine reads about an event's process, gathered from the process tree: the
// argv, user name, ancestors, cgroup, container, working directory and start time of the acting
// process. Used by the agent for every typed event and by the tests that replay live events.

#include <cstdint>

#include "core/event.h"
#include "enrich/process_tree.h"
#include "policy/fields.h"
#include "policy/rules.h"

namespace vigil::agent {

// Fills `*out` for `event` (which must outlive *out): out->event = &event, and whatever the
// tree holds for event.proc.pid (nothing when it holds nothing). Ancestors are read up to
// `max_ancestors` deep. `boot_to_unix_ns` converts the tree's boot-time start times to Unix ns
// (CLOCK_REALTIME - CLOCK_BOOTTIME; see BootToUnixOffsetNs).
void BuildEvalInput(const enrich::ProcessTree& tree, const core::Event& event,
                    int64_t boot_to_unix_ns, policy::EvalInput* out, size_t max_ancestors = 8);

// The last input built, kept for the next event of the same process: consecutive typed events
// of one process (a loop opening files) then cost no tree lookup and no copy of its argv and
// ancestors. Valid while the tree's generation has not moved (no fork, exec, exit or eviction
// anywhere since), so what it returns is what BuildEvalInput would build now. One per thread.
class EvalInputCache {
 public:
  // BuildEvalInput's input for `event` (out.event = &event; out.verdict = nullptr), rebuilt
  // only when the process or the tree changed. The reference stays valid until the next call.
  policy::EvalInput& Build(const enrich::ProcessTree& tree, const core::Event& event,
                           int64_t boot_to_unix_ns, size_t max_ancestors = 8);
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  // The rules' per-process memo for the input Build last returned (policy::ProcessMemo): reset
  // whenever Build rebuilds the input, so it is valid for that input until the next call.
  policy::ProcessMemo& memo() { return memo_; }

 private:
  policy::EvalInput input_;
  policy::ProcessMemo memo_;
  const enrich::ProcessTree* tree_ = nullptr;
  uint32_t pid_ = 0;
  uint64_t generation_ = 0;
  int64_t boot_to_unix_ns_ = 0;
  size_t max_ancestors_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

// CLOCK_REALTIME - CLOCK_BOOTTIME now, in ns.
int64_t BootToUnixOffsetNs();

}  // namespace vigil::agent
