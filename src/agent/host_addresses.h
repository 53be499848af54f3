#pragma once

// This host's own network addresses, as the fleet link reports them to the hub (docs/hub.md,
// "Global model"): every address of an interface that is up, except loopback, link-local and
// unspecified ones (another host cannot reach this one by them), IPv4 first, at most `limit`
// (the hub takes 16), without repeats. Empty when getifaddrs() fails (logged once).

#include <cstddef>
#include <string>
#include <vector>

namespace vigil::agent {

std::vector<std::string> HostAddresses(size_t limit = 16);

}  // namespace vigil::agent
