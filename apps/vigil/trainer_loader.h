#pragma once

// Loads the trainer module (model/train/trainer_module.h) once per process, on first use.

#include "core/status.h"
#include "model/train/trainer_module.h"

namespace vigil::app {

// The module's table. It is looked for beside the running binary (the build tree) and then in
// ../lib/vigil relative to it (an installed tree). kFailedPrecondition when no candidate loads
// or a module from another build is found; the message names every path tried and why.
core::Result<const model::TrainerModule*> LoadTrainerModule();

}  // namespace vigil::app
