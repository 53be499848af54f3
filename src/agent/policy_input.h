#pragma once

// What the decision engine reads about an event's process, gathered from the process tree: the
// argv, user name, ancestors, cgroup, container, working directory and start time of the acting
// process. Used by the agent for every typed event and by the tests that replay live events.

#include <cstdint>

#include "core/event.h"
#include "enrich/process_tree.h"
#include "policy/fields.h"

namespace vigil::agent {

// Fills `*out` for `event` (which must outlive *out): out->event = &event, and whatever the
// tree holds for event.proc.pid (nothing when it holds nothing). Ancestors are read up to
// `max_ancestors` deep. `boot_to_unix_ns` converts the tree's boot-time start times to Unix ns
// (CLOCK_REALTIME - CLOCK_BOOTTIME; see BootToUnixOffsetNs).
void BuildEvalInput(const enrich::ProcessTree& tree, const core::Event& event,
                    int64_t boot_to_unix_ns, policy::EvalInput* out, size_t max_ancestors = 8);

// CLOCK_REALTIME - CLOCK_BOOTTIME now, in ns.
int64_t BootToUnixOffsetNs();

}  // namespace vigil::agent
