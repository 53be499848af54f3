#include "agent/host_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace vigil::agent {

std::vector<std::string> HostAddresses(size_t limit) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      spdlog::warn("agent: listing this host's addresses (getifaddrs): {}", std::strerror(errno));
    }
    return {};
  }
  std::vector<std::string> v4, v6;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_UP) == 0 ||
        (a->ifa_flags & IFF_LOOPBACK) != 0) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      const in_addr& in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr;
      const uint32_t h = ntohl(in.s_addr);
      // 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16.
      if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 16) == 0xa9fe) continue;
      if (inet_ntop(AF_INET, &in, text, sizeof(text)) != nullptr) v4.emplace_back(text);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      const in6_addr& in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_LOOPBACK(&in6) || IN6_IS_ADDR_LINKLOCAL(&in6) ||
          IN6_IS_ADDR_UNSPECIFIED(&in6) || IN6_IS_ADDR_V4MAPPED(&in6)) {
        continue;
      }
      if (inet_ntop(AF_INET6, &in6, text, sizeof(text)) != nullptr) v6.emplace_back(text);
    }
  }
  freeifaddrs(list);
  std::vector<std::string> out;
  for (std::vector<std::string>* family : {&v4, &v6}) {
    for (std::string& a : *family) {
      if (out.size() >= limit) return out;
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace vigil::agent
