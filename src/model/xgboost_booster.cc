#include "model/xgboost_booster.h"

#include <dlfcn.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <mutex>
#include <string>

namespace vigil::model {
namespace {

// libxgboost is opened on first use, not linked: most vigil processes (the agent among them)
// never train or run a triage model, and the library with its dependencies (libdmlc, libgomp)
// and static initialisers would cost each of them about 4 MB of resident memory.
constexpr const char* kXgboostLibrary = "libxgboost.so.0";  // Debian's libxgboost0

// The C API functions used here.
#define VIGIL_XGB_FUNCTIONS(X) \
  X(XGBGetLastError) \
  X(XGBoostVersion) \
  X(XGDMatrixCreateFromMat) \
  X(XGDMatrixSetFloatInfo) \
  X(XGDMatrixFree) \
  X(XGBoosterCreate) \
  X(XGBoosterFree) \
  X(XGBoosterSetParam) \
  X(XGBoosterUpdateOneIter) \
  X(XGBoosterLoadModelFromBuffer) \
  X(XGBoosterSaveModelToBuffer) \
  X(XGBoosterGetNumFeature) \
  X(XGBoosterBoostedRounds) \
  X(XGBoosterPredictFromDMatrix)

struct XgbApi {
#define VIGIL_XGB_FN(name) decltype(&::name) name = nullptr;
  VIGIL_XGB_FUNCTIONS(VIGIL_XGB_FN)
#undef VIGIL_XGB_FN
};

XgbApi xgb;                     // filled once by LoadXgb
std::string xgb_load_error;     // why it could not be, "" when it was
std::once_flag xgb_once;

// Opens libxgboost and resolves the functions used here (once per process).
core::Status LoadXgb() {
  std::call_once(xgb_once, [] {
    void* lib = dlopen(kXgboostLibrary, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      xgb_load_error = std::string("xgboost: cannot load ") + kXgboostLibrary + " (" +
                       (why != nullptr ? why : "unknown error") +
                       "); triage models need Debian's libxgboost0";
      return;
    }
    XgbApi api;
    bool missing = false;
    auto resolve = [&](auto*& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (fn == nullptr && !missing) {
        missing = true;
        xgb_load_error = std::string("xgboost: ") + kXgboostLibrary + " has no " + name;
      }
    };
#define VIGIL_XGB_RESOLVE(name) resolve(api.name, #name);
    VIGIL_XGB_FUNCTIONS(VIGIL_XGB_RESOLVE)
#undef VIGIL_XGB_RESOLVE
#undef VIGIL_XGB_FUNCTIONS
    if (missing) {
      dlclose(lib);
      return;
    }
    xgb = api;  // the library stays open for the life of the process
  });
  if (!xgb_load_error.empty()) return core::Unavailable(xgb_load_error);
  return core::Status::Ok();
}

constexpr size_t kMaxBoostedTrees = 10000;
constexpr size_t kMaxNodes = 1u << 20;

// The Status of a failed C API call: "<what>: <XGBGetLastError()>".
core::Status XgbError(std::string_view what) {
  const char* err = xgb.XGBGetLastError();
  return core::Internal("xgboost: " + std::string(what) + ": " +
                        (err != nullptr && *err != '\0' ? err : "unknown error"));
}

#define VIGIL_XGB_CALL(call, what)          \
  do {                                      \
    if ((call) != 0) return XgbError(what); \
  } while (0)

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// XGBoost stores scalar parameters as strings ("5E-1"); accepts both forms.
bool NumberOf(const nlohmann::json& j, double* out) {
  if (j.is_number()) {
    *out = j.get<double>();
    return true;
  }
  if (!j.is_string()) return false;
  const std::string s = j.get<std::string>();
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end != s.c_str() && *end == '\0';
}

// Builds the document through nlohmann's DOM builder while counting values: UBJSON's typed
// containers can declare a count of values that take no bytes (nulls), so a few bytes could ask
// for billions of elements. More values (or a declared count larger) than input bytes stops the
// parse. nlohmann's builder also throws on some declared sizes even with exceptions off, hence
// the catch. Returns a discarded value on any failure.
class BoundedSax {
 public:
  BoundedSax(nlohmann::json& out, size_t budget) : dom_(out, false), budget_(budget) {}
  bool null() { return Count() && dom_.null(); }
  bool boolean(bool v) { return Count() && dom_.boolean(v); }
  bool number_integer(nlohmann::json::number_integer_t v) {
    return Count() && dom_.number_integer(v);
  }
  bool number_unsigned(nlohmann::json::number_unsigned_t v) {
    return Count() && dom_.number_unsigned(v);
  }
  bool number_float(nlohmann::json::number_float_t v, const std::string& s) {
    return Count() && dom_.number_float(v, s);
  }
  bool string(std::string& v) { return Count() && dom_.string(v); }
  bool binary(nlohmann::json::binary_t& v) { return Count() && dom_.binary(v); }
  bool start_object(size_t n) { return Fits(n) && Count() && dom_.start_object(n); }
  bool key(std::string& k) { return dom_.key(k); }
  bool end_object() { return dom_.end_object(); }
  bool start_array(size_t n) { return Fits(n) && Count() && dom_.start_array(n); }
  bool end_array() { return dom_.end_array(); }
  bool parse_error(size_t pos, const std::string& tok, const nlohmann::detail::exception& e) {
    return dom_.parse_error(pos, tok, e);
  }

 private:
  bool Count() { return ++values_ <= budget_; }
  bool Fits(size_t n) const { return n == static_cast<size_t>(-1) || n <= budget_; }
  nlohmann::detail::json_sax_dom_parser<nlohmann::json> dom_;
  size_t budget_;
  size_t values_ = 0;
};

nlohmann::json ParseUbjson(std::string_view bytes) {
  nlohmann::json out;
  try {
    BoundedSax sax(out, bytes.size());
    if (!nlohmann::json::sax_parse(bytes.begin(), bytes.end(), &sax,
                                   nlohmann::json::input_format_t::ubjson, /*strict=*/true)) {
      return nlohmann::json(nlohmann::json::value_t::discarded);
    }
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return out;
}

}  // namespace

core::Status CheckBoosterParams(const BoosterParams& p) {
  auto bad = [](const std::string& what) { return core::InvalidArgument("booster: " + what); };
  if (p.rounds < 1 || p.rounds > 10000) return bad("rounds must be in 1..10000");
  if (p.max_depth < 1 || p.max_depth > 16) return bad("max_depth must be in 1..16");
  if (!(p.eta > 0 && p.eta <= 1)) return bad("eta must be in (0, 1]");
  if (!(p.subsample > 0 && p.subsample <= 1)) return bad("subsample must be in (0, 1]");
  if (!(p.colsample_bytree > 0 && p.colsample_bytree <= 1)) {
    return bad("colsample_bytree must be in (0, 1]");
  }
  if (!(p.min_child_weight >= 0 && std::isfinite(p.min_child_weight))) {
    return bad("min_child_weight must be >= 0");
  }
  if (!(p.lambda >= 0 && std::isfinite(p.lambda))) return bad("lambda must be >= 0");
  if (!(p.scale_pos_weight > 0 && std::isfinite(p.scale_pos_weight))) {
    return bad("scale_pos_weight must be > 0");
  }
  if (p.threads < 1 || p.threads > 256) return bad("threads must be in 1..256");
  return core::Status::Ok();
}

void XgbMatrix::Free::operator()(void* h) const { xgb.XGDMatrixFree(h); }
void XgbBooster::Free::operator()(void* h) const { xgb.XGBoosterFree(h); }

core::Result<XgbMatrix> XgbMatrix::FromDense(std::span<const float> values, size_t rows,
                                             size_t cols) {
  if (rows == 0 || cols == 0) return core::InvalidArgument("xgboost: empty feature matrix");
  if (values.size() != rows * cols) {
    return core::InvalidArgument("xgboost: matrix of " + std::to_string(values.size()) +
                                 " values is not " + std::to_string(rows) + " x " +
                                 std::to_string(cols));
  }
  VIGIL_RETURN_IF_ERROR(LoadXgb());
  DMatrixHandle h = nullptr;
  VIGIL_XGB_CALL(xgb.XGDMatrixCreateFromMat(values.data(), rows, cols, kMissingFeature, &h),
                 "creating a matrix");
  XgbMatrix m;
  m.handle_.reset(h);
  m.rows_ = rows;
  m.cols_ = cols;
  return m;
}

core::Status XgbMatrix::SetLabels(std::span<const float> labels) {
  if (labels.size() != rows_) {
    return core::InvalidArgument("xgboost: " + std::to_string(labels.size()) + " labels for " +
                                 std::to_string(rows_) + " rows");
  }
  VIGIL_XGB_CALL(xgb.XGDMatrixSetFloatInfo(handle_.get(), "label", labels.data(), labels.size()),
                 "setting labels");
  return core::Status::Ok();
}

core::Result<XgbBooster> XgbBooster::Train(const XgbMatrix& train, const BoosterParams& p) {
  VIGIL_RETURN_IF_ERROR(CheckBoosterParams(p));
  VIGIL_RETURN_IF_ERROR(LoadXgb());
  BoosterHandle h = nullptr;
  DMatrixHandle d = train.handle();
  VIGIL_XGB_CALL(xgb.XGBoosterCreate(&d, 1, &h), "creating a booster");
  XgbBooster b;
  b.state_ = std::make_unique<State>();
  b.state_->handle.reset(h);
  const std::pair<const char*, std::string> params[] = {
      {"objective", "binary:logistic"},
      {"tree_method", "hist"},
      {"verbosity", "0"},
      {"max_depth", std::to_string(p.max_depth)},
      {"eta", Num(p.eta)},
      {"subsample", Num(p.subsample)},
      {"colsample_bytree", Num(p.colsample_bytree)},
      {"min_child_weight", Num(p.min_child_weight)},
      {"lambda", Num(p.lambda)},
      {"scale_pos_weight", Num(p.scale_pos_weight)},
      {"nthread", std::to_string(p.threads)},
      {"seed", std::to_string(p.seed)},
  };
  for (const auto& [key, value] : params) {
    VIGIL_XGB_CALL(xgb.XGBoosterSetParam(h, key, value.c_str()), std::string("setting ") + key);
  }
  for (int i = 0; i < p.rounds; ++i) {
    VIGIL_XGB_CALL(xgb.XGBoosterUpdateOneIter(h, i, d), "boosting round " + std::to_string(i));
  }
  b.features_ = train.cols();
  b.rounds_ = p.rounds;
  return b;
}

core::Result<XgbBooster> XgbBooster::Load(std::string_view bytes, size_t expected_features,
                                          std::string_view source) {
  VIGIL_RETURN_IF_ERROR(ValidateXgbModel(bytes, expected_features, source));
  VIGIL_RETURN_IF_ERROR(LoadXgb());
  BoosterHandle h = nullptr;
  VIGIL_XGB_CALL(xgb.XGBoosterCreate(nullptr, 0, &h), "creating a booster");
  XgbBooster b;
  b.state_ = std::make_unique<State>();
  b.state_->handle.reset(h);
  if (xgb.XGBoosterLoadModelFromBuffer(h, bytes.data(), bytes.size()) != 0) {
    return core::DataLoss(std::string(source) + ": xgboost model: " + xgb.XGBGetLastError());
  }
  // Scoring settings are not part of the model bytes.
  VIGIL_XGB_CALL(xgb.XGBoosterSetParam(h, "nthread", "1"), "setting nthread");
  VIGIL_XGB_CALL(xgb.XGBoosterSetParam(h, "verbosity", "0"), "setting verbosity");
  bst_ulong nf = 0;
  VIGIL_XGB_CALL(xgb.XGBoosterGetNumFeature(h, &nf), "reading the feature count");
  if (nf != expected_features) {
    return core::DataLoss(std::string(source) + ": xgboost model has " + std::to_string(nf) +
                          " features, expected " + std::to_string(expected_features));
  }
  int rounds = 0;
  VIGIL_XGB_CALL(xgb.XGBoosterBoostedRounds(h, &rounds), "reading the round count");
  b.features_ = nf;
  b.rounds_ = rounds;
  return b;
}

core::Result<std::string> XgbBooster::Save() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  bst_ulong len = 0;
  const char* data = nullptr;
  VIGIL_XGB_CALL(
      xgb.XGBoosterSaveModelToBuffer(state_->handle.get(), R"({"format": "ubj"})", &len, &data),
      "saving the model");
  return std::string(data, len);
}

core::Result<std::vector<float>> XgbBooster::PredictType(const XgbMatrix& m, int type) const {
  if (m.cols() != features_) {
    return core::InvalidArgument("xgboost: matrix has " + std::to_string(m.cols()) +
                                 " features, the model " + std::to_string(features_));
  }
  const std::string config = R"({"type": )" + std::to_string(type) +
                             R"(, "training": false, "iteration_begin": 0, "iteration_end": 0, )"
                             R"("strict_shape": false})";
  std::lock_guard<std::mutex> lock(state_->mu);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* out = nullptr;
  VIGIL_XGB_CALL(xgb.XGBoosterPredictFromDMatrix(state_->handle.get(), m.handle(), config.c_str(),
                                             &shape, &dim, &out),
                 "predicting");
  size_t n = 1;
  for (bst_ulong i = 0; i < dim; ++i) n *= shape[i];
  const size_t want = type == 0 ? m.rows() : m.rows() * (features_ + 1);
  if (n != want) {
    return core::Internal("xgboost: prediction of " + std::to_string(n) + " values, expected " +
                          std::to_string(want));
  }
  return std::vector<float>(out, out + n);
}

core::Result<std::vector<float>> XgbBooster::Predict(const XgbMatrix& m) const {
  return PredictType(m, 0);
}

core::Result<std::vector<float>> XgbBooster::Contributions(const XgbMatrix& m) const {
  return PredictType(m, 2);
}

core::Status ValidateXgbModel(std::string_view bytes, size_t expected_features,
                              std::string_view source) {
  auto bad = [&](const std::string& why) {
    return core::DataLoss(std::string(source) + ": xgboost model: " + why);
  };
  if (bytes.empty()) return bad("empty");
  // Both forms open with '{'; in JSON a key's quote (or white space) follows, in UBJSON a
  // length marker.
  const bool is_json =
      bytes.size() > 1 && bytes[0] == '{' &&
      (bytes[1] == '"' || bytes[1] == '}' || std::isspace(static_cast<unsigned char>(bytes[1])));
  nlohmann::json j = is_json ? nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr,
                                                     /*allow_exceptions=*/false)
                             : ParseUbjson(bytes);
  if (j.is_discarded() || !j.is_object()) return bad("not a UBJSON/JSON object");
  auto at = [](const nlohmann::json& o,
               std::initializer_list<const char*> path) -> const nlohmann::json* {
    const nlohmann::json* cur = &o;
    for (const char* key : path) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
    return cur;
  };
  const nlohmann::json* version = at(j, {"version"});
  if (version == nullptr || !version->is_array() || version->size() != 3 ||
      !std::all_of(version->begin(), version->end(),
                   [](const nlohmann::json& v) { return v.is_number_integer(); })) {
    return bad("no version [major, minor, patch]");
  }
  const nlohmann::json* learner = at(j, {"learner"});
  if (learner == nullptr || !learner->is_object()) return bad("no \"learner\" object");
  const nlohmann::json* objective = at(*learner, {"objective", "name"});
  if (objective == nullptr || *objective != "binary:logistic") {
    return bad("objective is not binary:logistic");
  }
  const nlohmann::json* nf = at(*learner, {"learner_model_param", "num_feature"});
  double nfv = -1;
  if (nf == nullptr || !NumberOf(*nf, &nfv) || nfv != static_cast<double>(expected_features)) {
    return bad("num_feature is not " + std::to_string(expected_features));
  }
  // XGBoost fills a parameter it does not find with its default (0 trees, for one), so every
  // parameter it reads must be present and hold the value this family writes.
  auto param_is = [&](const nlohmann::json& o, std::initializer_list<const char*> path,
                      double want) {
    const nlohmann::json* p = at(o, path);
    double v = 0;
    return p != nullptr && NumberOf(*p, &v) && v == want;
  };
  if (!param_is(*learner, {"learner_model_param", "num_class"}, 0))
    return bad("num_class is not 0");
  if (!param_is(*learner, {"learner_model_param", "num_target"}, 1)) {
    return bad("num_target is not 1");
  }
  for (const char* key : {"feature_names", "feature_types"}) {
    const nlohmann::json* a = at(*learner, {key});
    if (a == nullptr || !a->is_array() || !a->empty()) {
      return bad(std::string(key) + " is not an empty array");
    }
  }
  const nlohmann::json* base = at(*learner, {"learner_model_param", "base_score"});
  double bs = 0;
  if (base == nullptr || !NumberOf(*base, &bs) || !(bs > 0 && bs < 1)) {
    return bad("base_score is not in (0, 1)");
  }
  const nlohmann::json* booster = at(*learner, {"gradient_booster", "name"});
  if (booster == nullptr || *booster != "gbtree") return bad("booster is not gbtree");
  const nlohmann::json* trees = at(*learner, {"gradient_booster", "model", "trees"});
  const nlohmann::json* info = at(*learner, {"gradient_booster", "model", "tree_info"});
  if (trees == nullptr || !trees->is_array() || trees->empty() ||
      trees->size() > kMaxBoostedTrees) {
    return bad("trees must be an array of 1.." + std::to_string(kMaxBoostedTrees));
  }
  if (info == nullptr || !info->is_array() || info->size() != trees->size()) {
    return bad("tree_info does not list every tree");
  }
  for (const auto& t : *info) {
    if (!t.is_number_integer() || t.get<int64_t>() != 0) return bad("tree_info names a class");
  }
  const nlohmann::json& model = (*learner)["gradient_booster"]["model"];
  if (!param_is(model, {"gbtree_model_param", "num_trees"}, static_cast<double>(trees->size()))) {
    return bad("gbtree_model_param.num_trees is not the number of trees");
  }
  if (!param_is(model, {"gbtree_model_param", "num_parallel_tree"}, 1)) {
    return bad("num_parallel_tree is not 1");
  }
  if (!param_is(model, {"gbtree_model_param", "size_leaf_vector"}, 0)) {
    return bad("vector leaves are not supported");
  }
  for (size_t ti = 0; ti < trees->size(); ++ti) {
    const nlohmann::json& t = (*trees)[ti];
    const std::string where = "tree " + std::to_string(ti) + ": ";
    if (!t.is_object()) return bad(where + "not an object");
    const nlohmann::json* id = at(t, {"id"});
    if (id == nullptr || !id->is_number_integer() ||
        id->get<int64_t>() != static_cast<int64_t>(ti)) {
      return bad(where + "id is not " + std::to_string(ti));
    }
    const char* arrays[] = {"left_children", "right_children",   "parents",
                            "split_indices", "split_conditions", "default_left",
                            "base_weights",  "loss_changes",     "sum_hessian"};
    size_t n = 0;
    for (size_t k = 0; k < std::size(arrays); ++k) {
      const nlohmann::json* a = at(t, {arrays[k]});
      if (a == nullptr || !a->is_array()) return bad(where + "no array \"" + arrays[k] + "\"");
      if (k == 0) n = a->size();
      if (a->size() != n) return bad(where + "\"" + arrays[k] + "\" differs in length");
    }
    if (n == 0 || n > kMaxNodes) return bad(where + "node count out of range");
    const nlohmann::json* num_nodes = at(t, {"tree_param", "num_nodes"});
    double nn = -1;
    if (num_nodes == nullptr || !NumberOf(*num_nodes, &nn) || nn != static_cast<double>(n)) {
      return bad(where + "tree_param.num_nodes disagrees with the arrays");
    }
    const nlohmann::json* tnf = at(t, {"tree_param", "num_feature"});
    double tnfv = -1;
    if (tnf == nullptr || !NumberOf(*tnf, &tnfv) || tnfv != nfv) {
      return bad(where + "tree_param.num_feature disagrees with the learner");
    }
    if (!param_is(t, {"tree_param", "size_leaf_vector"}, 0)) {
      return bad(where + "vector leaves are not supported");
    }
    const nlohmann::json* split_type = at(t, {"split_type"});
    if (split_type == nullptr || !split_type->is_array() || split_type->size() != n) {
      return bad(where + "\"split_type\" differs in length");
    }
    for (const auto& st : *split_type) {
      if (!st.is_number_integer() || st.get<int64_t>() != 0) {
        return bad(where + "categorical splits are not supported");
      }
    }
    const nlohmann::json* cats = at(t, {"categories"});
    if (cats != nullptr && (!cats->is_array() || !cats->empty())) {
      return bad(where + "categorical splits are not supported");
    }
    const auto& left = t["left_children"];
    const auto& right = t["right_children"];
    const auto& parents = t["parents"];
    const auto& split = t["split_indices"];
    const auto& cond = t["split_conditions"];
    const auto& dleft = t["default_left"];
    std::vector<int64_t> parent_of(n, -2);
    parent_of[0] = -1;
    for (size_t i = 0; i < n; ++i) {
      const std::string node = where + "node " + std::to_string(i) + ": ";
      if (!left[i].is_number_integer() || !right[i].is_number_integer() ||
          !parents[i].is_number_integer() || !split[i].is_number_integer() ||
          !cond[i].is_number() || !(dleft[i].is_number_integer() || dleft[i].is_boolean())) {
        return bad(node + "field of the wrong type");
      }
      const int64_t l = left[i].get<int64_t>();
      const int64_t r = right[i].get<int64_t>();
      const double c = cond[i].get<double>();
      if (!std::isfinite(c)) return bad(node + "split value or leaf weight is not finite");
      if (l == -1 && r == -1) continue;  // leaf; its weight is in split_conditions
      if (l == -1 || r == -1) return bad(node + "has one child");
      const auto ii = static_cast<int64_t>(i);
      if (l <= ii || r <= ii || l >= static_cast<int64_t>(n) || r >= static_cast<int64_t>(n) ||
          l == r) {
        return bad(node + "child index out of range");
      }
      const int64_t f = split[i].get<int64_t>();
      if (f < 0 || f >= static_cast<int64_t>(expected_features)) {
        return bad(node + "split feature " + std::to_string(f) + " is not below " +
                   std::to_string(expected_features));
      }
      for (int64_t child : {l, r}) {
        if (parent_of[static_cast<size_t>(child)] != -2) return bad(node + "child shared");
        parent_of[static_cast<size_t>(child)] = ii;
      }
    }
    // Nodes pruned away stay in the arrays, unreachable, and are counted in num_deleted.
    size_t unreachable = 0;
    for (size_t i = 0; i < n; ++i) {
      if (parent_of[i] == -2) {
        ++unreachable;
        continue;
      }
      // XGBoost's parent array marks the root with a high bit; only the others are checked.
      if (i > 0 && parents[i].get<int64_t>() != parent_of[i]) {
        return bad(where + "node " + std::to_string(i) + " has the wrong parent");
      }
    }
    const nlohmann::json* deleted = at(t, {"tree_param", "num_deleted"});
    double nd = 0;
    if (deleted == nullptr || !NumberOf(*deleted, &nd)) return bad(where + "no num_deleted");
    if (static_cast<double>(unreachable) != nd) {
      return bad(where + std::to_string(unreachable) + " unreachable nodes, num_deleted is " +
                 std::to_string(static_cast<int64_t>(nd)));
    }
  }
  return core::Status::Ok();
}

std::string XgbVersion() {
  if (!LoadXgb().ok()) return "unavailable";
  int major = 0, minor = 0, patch = 0;
  xgb.XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace vigil::model
