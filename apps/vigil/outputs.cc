#include "apps/vigil/outputs.h"

namespace vigil::app {

std::vector<std::string> SinkSpecsFromConfig(const core::VigilConfig& config,
                                             pipeline::FileSinkOptions* file_options) {
  std::vector<std::string> specs;
  for (const core::SinkConfig& s : config.sinks) {
    switch (s.type) {
      case core::SinkType::kStdout:
        specs.push_back("stdout");
        break;
      case core::SinkType::kNull:
        specs.push_back("null");
        break;
      case core::SinkType::kFile:
        specs.push_back("file:" + s.path);
        file_options->max_bytes = s.rotate_bytes;
        file_options->keep = s.keep;
        break;
    }
  }
  return specs;
}

pipeline::SyncMode SyncModeOf(core::FsyncPolicy policy) {
  switch (policy) {
    case core::FsyncPolicy::kAlways: return pipeline::SyncMode::kAlways;
    case core::FsyncPolicy::kBatch: return pipeline::SyncMode::kEveryN;
    case core::FsyncPolicy::kNever: return pipeline::SyncMode::kNever;
  }
  return pipeline::SyncMode::kAlways;
}

}  // namespace vigil::app
