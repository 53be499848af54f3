#pragma once

// Vigil's status codes as gRPC's, for every gRPC service (the decision service, the hub's agent
// service): kInvalidArgument -> INVALID_ARGUMENT, kPermissionDenied -> PERMISSION_DENIED, ...

#include <grpcpp/support/status.h>

#include "core/status.h"

namespace vigil::api {

grpc::StatusCode GrpcCodeOf(core::StatusCode c);
// OK for an OK status, else the code and the message.
grpc::Status GrpcStatusOf(const core::Status& s);

}  // namespace vigil::api
