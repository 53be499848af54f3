#pragma once

// The hub's JSON answers, shared by the route files (hub/server.cc, hub/fleet.cc).

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/frontend.h"
#include "core/status.h"
#include "hub/requests.h"

namespace vigil::hub::internal {

inline constexpr const char* kJsonType = "application/json";

inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline void Reply(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(Dump(body), kJsonType);
}

inline void ReplyError(httplib::Response& res, int status, std::string_view code,
                       std::string_view message) {
  Reply(res, status,
        {{"schema_version", kHubSchemaVersion}, {"error", {{"code", code}, {"message", message}}}});
}

inline void ReplyStatus(httplib::Response& res, const core::Status& s) {
  ReplyError(res, api::HttpStatusOf(s.code()), core::StatusCodeName(s.code()), s.message());
}

}  // namespace vigil::hub::internal
