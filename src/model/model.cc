#include "model/model.h"

namespace vigil::model {

core::Result<core::Verdict> Model::Score(const FeatureView& request) const {
  if (request.syscalls.empty() && !request.values.empty()) {
    return core::InvalidArgument("model family \"" + family() +
                                 "\" scores system-call windows, not feature vectors");
  }
  std::unique_ptr<StreamScorer> stream = NewStream(request.subject);
  stream->ObserveSyscalls(request.arch, request.syscalls);
  return stream->Current();
}

}  // namespace vigil::model
