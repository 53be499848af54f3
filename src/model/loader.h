#pragma once

// Loading a model file of any registered family behind the Model interface. Each family adds
// one line to the table in loader.cc; callers that score streams (eval, replay, the agent) never
// name a family.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "model/model_file.h"

namespace vigil::model {

// Builds a family's model from a decoded file whose header names that family. Errors name
// `source`.
using FamilyLoader = core::Result<std::unique_ptr<Model>> (*)(const ModelFile& file,
                                                             std::string_view source);

struct FamilyEntry {
  std::string_view family;  // the header's "family" value
  FamilyLoader load;
};

// Every registered family, in the table's order.
const std::vector<FamilyEntry>& RegisteredFamilies();

// kInvalidArgument "<source>: unknown model family "x" (known: a, b, ...)" for a family no one
// registered; otherwise the family's own loader result.
core::Result<std::unique_ptr<Model>> LoadModelFromFile(const ModelFile& file,
                                                       std::string_view source);
// Reads, checks and loads `path`.
core::Result<std::unique_ptr<Model>> LoadModel(const std::string& path);

}  // namespace vigil::model
