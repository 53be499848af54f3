#pragma once

// Turning the config's output settings into what the pipeline takes; shared by the commands that
// write verdicts (replay, agent).

#include <string>
#include <vector>

#include "core/config.h"
#include "pipeline/sink.h"
#include "pipeline/spool.h"

namespace vigil::app {

// The sink specs ("stdout", "null", "file:PATH") of the config's `sinks`; the rotation settings
// of a file sink go to *file_options (one set for all file sinks: MakeSink takes one).
std::vector<std::string> SinkSpecsFromConfig(const core::VigilConfig& config,
                                             pipeline::FileSinkOptions* file_options);

pipeline::SyncMode SyncModeOf(core::FsyncPolicy policy);

}  // namespace vigil::app
