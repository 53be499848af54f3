#include "policy/rules.h"

#include <arpa/inet.h>
#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "core/files.h"
#include "core/syscall_table.h"
#include "policy/condition.h"

namespace vigil::policy {
namespace {

// ---------------------------------------------------------------------------------------------
// Items as the files give them, before compilation.

constexpr size_t kMaxRuleNodes = 100000;  // per rule, after macro expansion
constexpr size_t kMaxRegexBytes = 256;     // longer patterns risk deep recursion in std::regex

struct Place {
  std::string file;
  int line = 0;
  int column = 0;
  std::string ToString() const {
    return file + ":" + std::to_string(line) + (column > 0 ? ":" + std::to_string(column) : "");
  }
};

struct RawList {
  std::vector<std::string> items;
  Place place;
};

struct RawMacro {
  std::string condition;
  Place place;
};

struct RawException {
  std::string name;
  bool single_field = false;         // `fields: proc.name` (not a list)
  std::vector<std::string> fields;
  std::vector<std::string> comps;
  std::vector<std::vector<YAML::Node>> values;  // one tuple per entry; single-field: one value
  Place place;
};

struct RawRule {
  Rule rule;
  std::vector<RawException> exceptions;
  Place place;
  Place condition_place;
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Place PlaceOf(const YAML::Node& n, const std::string& file) {
  const YAML::Mark m = n.Mark();
  return {file, m.line + 1, m.column + 1};
}

core::Status ErrorAt(const Place& p, const std::string& why) {
  return core::InvalidArgument(p.ToString() + ": " + why);
}

// ---------------------------------------------------------------------------------------------
// Compiled conditions.

struct Slot {
  const FieldDef* def = nullptr;
  int index = -1;
};

// An address block: `prefix` leading bits of `addr` (IPv4 in the first 4 bytes).
struct IpNet {
  int family = AF_INET;
  std::array<uint8_t, 16> addr{};
  int prefix = 32;
};

// Parses "ADDR" or "ADDR/BITS"; false when malformed.
bool ParseIpNet(const std::string& text, IpNet* out) {
  const size_t slash = text.find('/');
  const std::string prefix_part = slash == std::string::npos ? std::string() : text.substr(0, slash);
  const char* addr = slash == std::string::npos ? text.c_str() : prefix_part.c_str();
  IpNet n;
  if (inet_pton(AF_INET, addr, n.addr.data()) == 1) {
    n.family = AF_INET;
    n.prefix = 32;
  } else if (inet_pton(AF_INET6, addr, n.addr.data()) == 1) {
    n.family = AF_INET6;
    n.prefix = 128;
  } else {
    return false;
  }
  if (slash != std::string::npos) {
    const std::string bits = text.substr(slash + 1);
    char* end = nullptr;
    const long b = std::strtol(bits.c_str(), &end, 10);
    if (bits.empty() || *end != '\0' || b < 0 || b > n.prefix) return false;
    n.prefix = static_cast<int>(b);
  }
  *out = n;
  return true;
}

bool InNet(const IpNet& net, const IpNet& ip) {
  if (net.family != ip.family) return false;
  const int full = net.prefix / 8, rest = net.prefix % 8;
  if (!std::equal(net.addr.begin(), net.addr.begin() + full, ip.addr.begin())) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (net.addr[full] & mask) == (ip.addr[full] & mask);
}

// A set of strings (an `in` list) searched by hash; small lists are scanned. The views point
// into the owning Node's `strs`, so it is built once the compiled tree is in its final place.
class StrSet {
 public:
  void Build(const std::vector<std::string>& items) {
    items_.assign(items.begin(), items.end());
    lengths_ = 0;
    for (std::string_view item : items_) lengths_ |= LengthBit(item);
    table_.clear();
    if (items_.size() <= kScanMax) return;
    size_t size = 16;
    while (size < items_.size() * 2) size *= 2;
    table_.assign(size, 0);
    mask_ = size - 1;
    for (size_t i = 0; i < items_.size(); ++i) {
      size_t h = std::hash<std::string_view>{}(items_[i]) & mask_;
      while (table_[h] != 0) h = (h + 1) & mask_;
      table_[h] = static_cast<uint32_t>(i + 1);
    }
  }
  bool Contains(std::string_view s) const { return Find(s) >= 0; }
  // The index of `s` in the items Build was given, or -1.
  int Find(std::string_view s) const {
    if ((lengths_ & LengthBit(s)) == 0) return -1;  // no item has this length
    if (table_.empty()) {
      for (size_t i = 0; i < items_.size(); ++i) {
        if (items_[i] == s) return static_cast<int>(i);
      }
      return -1;
    }
    for (size_t h = std::hash<std::string_view>{}(s) & mask_; table_[h] != 0; h = (h + 1) & mask_) {
      if (items_[table_[h] - 1] == s) return static_cast<int>(table_[h] - 1);
    }
    return -1;
  }

 private:
  static constexpr size_t kScanMax = 4;
  // Bit min(length, 63): which lengths the items have.
  static uint64_t LengthBit(std::string_view s) { return uint64_t{1} << std::min<size_t>(s.size(), 63); }
  uint64_t lengths_ = 0;
  std::vector<std::string_view> items_;
  std::vector<uint32_t> table_;  // 0 free, else index + 1 into items_
  size_t mask_ = 0;
};

// A glob (fnmatch(3) without flags) made only of literal text and '*' matches by searching for
// its pieces in order; any other pattern goes to fnmatch.
struct Glob {
  bool simple = false;
  std::vector<std::string> pieces;  // the text between the '*'s (first/last may be empty)

  void Compile(const std::string& pattern, bool casefold) {
    simple = !casefold && pattern.find_first_of("?[\\") == std::string::npos;
    pieces.clear();
    if (!simple) return;
    size_t start = 0;
    while (true) {
      const size_t star = pattern.find('*', start);
      pieces.push_back(pattern.substr(start, star == std::string::npos ? std::string::npos : star - start));
      if (star == std::string::npos) break;
      start = star + 1;
    }
  }

  // Only for `simple` patterns.
  bool Match(std::string_view s) const {
    if (pieces.size() == 1) return s == pieces[0];
    const std::string& first = pieces.front();
    const std::string& last = pieces.back();
    if (s.size() < first.size() + last.size() || !s.starts_with(first) || !s.ends_with(last)) {
      return false;
    }
    std::string_view middle = s.substr(first.size(), s.size() - first.size() - last.size());
    for (size_t i = 1; i + 1 < pieces.size(); ++i) {
      const size_t at = middle.find(pieces[i]);
      if (at == std::string_view::npos) return false;
      middle.remove_prefix(at + pieces[i].size());
    }
    return true;
  }
};

// fnmatch(3) on a view: copied into a per-thread buffer for its terminating NUL.
bool FnMatch(const std::string& pattern, std::string_view s, int flags) {
  thread_local std::string buf;
  buf.assign(s);
  return fnmatch(pattern.c_str(), buf.c_str(), flags) == 0;
}

struct Node {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCheck };
  Kind kind = Kind::kCheck;
  std::vector<Node> children;
  int slot = -1;
  FieldType type = FieldType::kString;
  CmpOp op = CmpOp::kEq;
  std::vector<std::string> strs;  // for icontains: lower-cased; in/intersects: sorted, unique
  std::vector<double> nums;
  std::vector<IpNet> nets;  // kIpNet
  std::shared_ptr<const std::regex> re;
  StrSet set;  // in/intersects over strings (built by Finalize)
  Glob glob;   // glob/iglob
};

// Parses an address field's value; false when it is not an address.
bool ParseIp(std::string_view s, IpNet* ip) { return ParseIpNet(std::string(s), ip); }

bool CompareIpNet(const Node& n, const IpNet& ip) {
  const bool inside =
      std::any_of(n.nets.begin(), n.nets.end(), [&](const IpNet& net) { return InNet(net, ip); });
  return n.op == CmpOp::kNe ? !inside : inside;
}

struct OutputPart {
  std::string text;  // literal, when slot < 0
  int slot = -1;
};

struct CompiledRule {
  size_t rule = 0;  // index into rules
  Node root;
  std::vector<OutputPart> output;
};

bool IsStringOnly(CmpOp op) {
  switch (op) {
    case CmpOp::kContains: case CmpOp::kIContains: case CmpOp::kBContains:
    case CmpOp::kStartsWith: case CmpOp::kBStartsWith: case CmpOp::kEndsWith:
    case CmpOp::kGlob: case CmpOp::kIGlob: case CmpOp::kRegex: case CmpOp::kPmatch:
      return true;
    default:
      return false;
  }
}

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `needle` is lower case already.
bool ContainsFolded(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (hay.size() < needle.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() && AsciiLower(hay[i + j]) == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

bool CompareString(const Node& n, std::string_view s) {
  switch (n.op) {
    case CmpOp::kEq: return s == n.strs[0];
    case CmpOp::kNe: return s != n.strs[0];
    case CmpOp::kContains:
    case CmpOp::kBContains: return s.find(n.strs[0]) != std::string_view::npos;
    case CmpOp::kIContains: return ContainsFolded(s, n.strs[0]);
    case CmpOp::kStartsWith:
    case CmpOp::kBStartsWith: return s.starts_with(n.strs[0]);
    case CmpOp::kEndsWith: return s.ends_with(n.strs[0]);
    case CmpOp::kGlob: return n.glob.simple ? n.glob.Match(s) : FnMatch(n.strs[0], s, 0);
    case CmpOp::kIGlob: return FnMatch(n.strs[0], s, FNM_CASEFOLD);
    case CmpOp::kRegex: return std::regex_search(s.begin(), s.end(), *n.re);
    case CmpOp::kIn:
    case CmpOp::kIntersects: return n.set.Contains(s);
    case CmpOp::kPmatch:
      return std::any_of(n.strs.begin(), n.strs.end(), [&](const std::string& p) {
        if (s == p) return true;
        if (!s.starts_with(p)) return false;
        return p.ends_with('/') || s[p.size()] == '/';
      });
    default:
      return false;
  }
}

bool CompareNumber(const Node& n, double v) {
  switch (n.op) {
    case CmpOp::kEq: return v == n.nums[0];
    case CmpOp::kNe: return v != n.nums[0];
    case CmpOp::kLt: return v < n.nums[0];
    case CmpOp::kLe: return v <= n.nums[0];
    case CmpOp::kGt: return v > n.nums[0];
    case CmpOp::kGe: return v >= n.nums[0];
    case CmpOp::kIn:
    case CmpOp::kIntersects: return std::find(n.nums.begin(), n.nums.end(), v) != n.nums.end();
    default: return false;
  }
}

// Rewrites `n` into an equivalent tree that is cheaper to evaluate: nested and/or of the same
// kind are spliced into their parent (macros nest them), `not not x` is x, and the equality and
// `in` checks of one string field under one `or` become one `in` check (any value equal to one
// of A or one of B == any value in A u B; an absent field fails both ways).
void Simplify(Node* n) {
  for (Node& c : n->children) Simplify(&c);
  if (n->kind == Node::Kind::kNot) {
    Node& inner = n->children[0];
    if (inner.kind == Node::Kind::kNot) {
      Node keep = std::move(inner.children[0]);
      *n = std::move(keep);
    }
    return;
  }
  if (n->kind != Node::Kind::kAnd && n->kind != Node::Kind::kOr) return;
  std::vector<Node> flat;
  for (Node& c : n->children) {
    if (c.kind == n->kind) {
      for (Node& g : c.children) flat.push_back(std::move(g));
    } else {
      flat.push_back(std::move(c));
    }
  }
  if (n->kind == Node::Kind::kOr) {
    std::vector<Node> merged;
    std::map<int, size_t> set_of_slot;  // slot -> index in `merged` of its `in` check
    for (Node& c : flat) {
      const bool mergeable = c.kind == Node::Kind::kCheck && c.type == FieldType::kString &&
                             (c.op == CmpOp::kEq || c.op == CmpOp::kIn);
      if (!mergeable) {
        merged.push_back(std::move(c));
        continue;
      }
      const auto it = set_of_slot.find(c.slot);
      if (it == set_of_slot.end()) {
        set_of_slot[c.slot] = merged.size();
        merged.push_back(std::move(c));
        continue;
      }
      Node& into = merged[it->second];
      into.op = CmpOp::kIn;
      into.strs.insert(into.strs.end(), c.strs.begin(), c.strs.end());
      std::sort(into.strs.begin(), into.strs.end());
      into.strs.erase(std::unique(into.strs.begin(), into.strs.end()), into.strs.end());
    }
    flat = std::move(merged);
  }
  if (flat.size() == 1) {
    Node keep = std::move(flat[0]);
    *n = std::move(keep);
    return;
  }
  n->children = std::move(flat);
}

// Builds what refers into a node's own storage (the `in` sets), once the tree no longer moves.
void Finalize(Node* n) {
  for (Node& c : n->children) Finalize(&c);
  if (n->kind == Node::Kind::kCheck && (n->op == CmpOp::kIn || n->op == CmpOp::kIntersects)) {
    n->set.Build(n->strs);
  }
}

// A condition specialised for one event type (a TypePlan's): evt.type checks replaced by their
// value for that type and folded away with what they decide, and the parts that read only the
// acting process (ProcessOnly) grouped first under kMemo nodes, whose value a ProcessMemo keeps
// per process. Checks point to the compiled tree's nodes (CompiledRule::root), which own them.
struct ENode {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCheck, kMemo };
  Kind kind = Kind::kAnd;       // an empty kAnd holds for every event
  uint32_t memo = 0;            // kMemo: index of its value in a ProcessMemo
  const Node* check = nullptr;  // kCheck
  std::vector<ENode> children;  // and/or: two or more; not, memo: one
};

struct PlannedRule {
  uint32_t compiled = 0;          // index into Impl::compiled
  const ENode* root = nullptr;    // into Impl::plan_trees: process parts first, memoised
  const ENode* plain = nullptr;   // the same without a memo (no kMemo node)
};

struct TypePlan {
  std::vector<PlannedRule> rules;  // in load order
};

// Fields whose value depends only on the acting process: the EvalInput's process part and the
// event's `proc` (what ProcessMemo's contract names), never the event's payload, time, verdict
// or asset class. A field not listed here is read per event.
bool ProcessOnly(std::string_view field) {
  static constexpr std::array<std::string_view, 25> kNames = {
      "proc.name",      "proc.exe",         "proc.exepath",   "proc.args",
      "proc.cmdline",   "proc.pid",         "proc.ppid",      "proc.pname",
      "proc.pexe",      "proc.pexepath",    "proc.pcmdline",  "proc.aname",
      "proc.aexepath",  "proc.cwd",         "proc.tty",       "thread.cap_effective",
      "thread.cap_permitted", "user.loginuid", "user.uid",    "user.name",
      "container.id",   "container.image.repository", "container.image",
      "container.privileged", "k8s.ns.name"};
  return std::find(kNames.begin(), kNames.end(), field) != kNames.end();
}

bool IsTypeCheck(const Node& n, const std::vector<Slot>& slots) {
  return n.kind == Node::Kind::kCheck && slots[static_cast<size_t>(n.slot)].def->name == "evt.type";
}

// What an evt.type check gives for events of one plan's type: `name`, or (other) any type that
// none of the rule set's evt.type =, !=, in and intersects checks names, or (any) any type at
// all. -1: not known without the event (e.g. the other plan's startswith checks).
struct PlanType {
  std::string_view name;
  bool other = false;
  bool any = false;
  int8_t Value(const Node& n) const {
    if (n.op == CmpOp::kExists) return 1;  // every event has an evt.type
    if (any) return -1;
    if (!other) return CompareString(n, name) ? 1 : 0;
    switch (n.op) {
      case CmpOp::kEq: case CmpOp::kIn: case CmpOp::kIntersects: return 0;
      case CmpOp::kNe: return 1;
      default: return -1;
    }
  }
};

// Specialises compiled conditions for a plan's type (ENode).
class Planner {
 public:
  Planner(const std::vector<Slot>& slots, std::map<std::vector<const Node*>, uint32_t>* memo_ids)
      : slots_(slots), memo_ids_(memo_ids) {}

  // -1: `root` may hold or fail for events of type `t`, and *out is its specialised tree, the
  // operands of each and/or ordered by estimated cost and chance (with `memo`: process parts
  // grouped first under kMemo nodes; without: no kMemo node); 0 / 1: it never / always holds
  // for them.
  int8_t Plan(const Node& root, const PlanType& t, bool memo, ENode* out) {
    memo_ = memo;
    Part p = Specialise(root, t);
    if (p.constant >= 0) return p.constant;
    *out = p.process_only && memo_ ? Memo(std::move(p.node), {&root}) : std::move(p.node);
    return -1;
  }

 private:
  struct Part {
    int8_t constant = -1;  // 0 / 1: the part folded to false / true
    bool process_only = false;
    const Node* from = nullptr;
    ENode node;
    // Estimates for ordering operands (static guesses, no statistics): the chance that the part
    // holds, and what evaluating it costs (in checks).
    double p = 0.5;
    double cost = 1;
  };

  // A check's chance to hold: equality and matching against given text are selective, `!=`
  // and `exists` are not, a bool (or a field of a few values, such as fd.typechar) is even.
  double Chance(const Node& n) const {
    const std::string_view field = slots_[static_cast<size_t>(n.slot)].def->name;
    if (field == "fd.typechar" || field == "fd.type" || field == "fd.l4proto") return 0.5;
    switch (n.op) {
      case CmpOp::kExists:
      case CmpOp::kNe:
        return 0.9;
      case CmpOp::kEq:
        return n.type == FieldType::kBool ? 0.5 : 0.1;
      case CmpOp::kLt: case CmpOp::kLe: case CmpOp::kGt: case CmpOp::kGe:
        return 0.5;
      default:
        return 0.1;
    }
  }

  // A check's cost: one, plus what building the field's value and matching take.
  double Cost(const Node& n) const {
    const Slot& s = slots_[static_cast<size_t>(n.slot)];
    static constexpr std::array<std::pair<std::string_view, double>, 12> kFieldCost = {{
        {"fd.name", 1}, {"fd.directory", 1}, {"proc.cmdline", 2}, {"proc.pcmdline", 2},
        {"proc.args", 2}, {"evt.arg.flags", 3}, {"thread.cap_effective", 3},
        {"thread.cap_permitted", 3}, {"evt.res", 2}, {"evt.arg.request", 3},
        {"evt.arg.domain", 3}, {"ml.explain", 3}}};
    double cost = 1;
    for (const auto& [name, c] : kFieldCost) {
      if (s.def->name == name) cost += c;
    }
    if (s.def->arg != ArgUse::kNone && s.index < 0) cost += 2;  // every ancestor
    switch (n.op) {
      case CmpOp::kRegex: cost += 5; break;
      case CmpOp::kGlob: cost += n.glob.simple ? 1 : 3; break;
      case CmpOp::kIGlob: cost += 3; break;
      case CmpOp::kContains: case CmpOp::kIContains: case CmpOp::kBContains:
      case CmpOp::kIn: case CmpOp::kIntersects: case CmpOp::kPmatch:
        cost += 0.5;
        break;
      default: break;
    }
    return cost;
  }
  static Part Const(bool v) {
    Part p;
    p.constant = v ? 1 : 0;
    return p;
  }

  ENode Memo(ENode inner, std::vector<const Node*> key) {
    const auto [it, fresh] = memo_ids_->try_emplace(std::move(key), memo_ids_->size());
    ENode m;
    m.kind = ENode::Kind::kMemo;
    m.memo = it->second;
    m.children.push_back(std::move(inner));
    return m;
  }

  Part Specialise(const Node& n, const PlanType& t) {
    switch (n.kind) {
      case Node::Kind::kCheck: {
        if (IsTypeCheck(n, slots_)) {
          if (const int8_t v = t.Value(n); v >= 0) return Const(v == 1);
        }
        Part p;
        p.from = &n;
        p.node.kind = ENode::Kind::kCheck;
        p.node.check = &n;
        p.process_only = ProcessOnly(slots_[static_cast<size_t>(n.slot)].def->name);
        p.p = Chance(n);
        p.cost = Cost(n);
        return p;
      }
      case Node::Kind::kNot: {
        Part inner = Specialise(n.children[0], t);
        if (inner.constant >= 0) return Const(inner.constant == 0);
        Part p;
        p.from = &n;
        p.process_only = inner.process_only;
        p.p = 1 - inner.p;
        p.cost = inner.cost;
        p.node.kind = ENode::Kind::kNot;
        p.node.children.push_back(std::move(inner.node));
        return p;
      }
      case Node::Kind::kAnd:
      case Node::Kind::kOr:
        break;
    }
    const bool is_and = n.kind == Node::Kind::kAnd;
    std::vector<Part> kept;
    for (const Node& c : n.children) {
      Part part = Specialise(c, t);
      if (part.constant >= 0) {
        if ((part.constant == 1) == is_and) continue;  // true under and, false under or: no effect
        return Const(!is_and);                        // false under and, true under or: decides
      }
      kept.push_back(std::move(part));
    }
    if (kept.empty()) return Const(is_and);
    if (kept.size() == 1) return std::move(kept[0]);
    Part p;
    p.from = &n;
    p.node.kind = is_and ? ENode::Kind::kAnd : ENode::Kind::kOr;
    const bool all = std::all_of(kept.begin(), kept.end(), [](const Part& k) { return k.process_only; });
    // Cheapest per chance to decide first: an `and` stops at a false operand, an `or` at a true
    // one (with independent operands, ordering by cost / chance of deciding minimises the
    // expected cost). Only the cost changes: the operands have no effects.
    if (memo_) {
      for (Part& k : kept) {
        if (k.process_only && !all) k.cost = 0.1;  // read from the memo after the first event
      }
    }
    auto decides = [is_and](const Part& k) { return std::max(is_and ? 1 - k.p : k.p, 0.01); };
    std::stable_sort(kept.begin(), kept.end(), [&](const Part& a, const Part& b) {
      return a.cost / decides(a) < b.cost / decides(b);
    });
    double reach = 1;  // the chance that evaluation gets to the next operand
    p.cost = 0;
    for (const Part& k : kept) {
      p.cost += reach * k.cost;
      reach *= is_and ? k.p : 1 - k.p;
    }
    p.p = is_and ? reach : 1 - reach;
    if (all || !memo_) {
      p.process_only = all;
      for (Part& k : kept) p.node.children.push_back(std::move(k.node));
      return p;
    }
    // The process-only operands go first, as one memoised part: and/or are commutative and
    // evaluating an operand has no effect, so only the cost changes.
    std::vector<const Node*> key;
    ENode group;
    group.kind = p.node.kind;
    std::vector<ENode> rest;
    for (Part& k : kept) {
      if (k.process_only) {
        key.push_back(k.from);
        group.children.push_back(std::move(k.node));
      } else {
        rest.push_back(std::move(k.node));
      }
    }
    if (!key.empty()) {
      p.node.children.push_back(
          Memo(group.children.size() == 1 ? std::move(group.children[0]) : std::move(group),
               std::move(key)));
    }
    for (ENode& r : rest) p.node.children.push_back(std::move(r));
    return p;
  }

  const std::vector<Slot>& slots_;
  std::map<std::vector<const Node*>, uint32_t>* memo_ids_;
  bool memo_ = true;
};

bool SameProcess(const core::ProcessIdentity& a, const core::ProcessIdentity& b) {
  return a.pid == b.pid && a.ppid == b.ppid && a.uid == b.uid && a.loginuid == b.loginuid &&
         a.tty == b.tty && a.has_caps == b.has_caps && a.cap_effective == b.cap_effective &&
         a.cap_permitted == b.cap_permitted && a.comm == b.comm && a.exe == b.exe;
}

// Appends a field's value as an output shows it: "<NA>" when absent, numbers without a
// fraction as integers, several values joined by ','.
void RenderInto(const FieldValue& v, FieldType type, std::string* out) {
  if (!v.present) {
    out->append("<NA>");
    return;
  }
  if (type == FieldType::kNumber) {
    if (std::floor(v.num) == v.num && std::fabs(v.num) < 1e15) {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<long long>(v.num));
      out->append(buf, r.ptr);
      return;
    }
    std::ostringstream os;
    os << v.num;
    out->append(os.str());
    return;
  }
  const size_t start = out->size();
  for (std::string_view s : v.strs) {
    if (out->size() != start) out->push_back(',');
    out->append(s);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view PriorityName(Priority p) {
  static constexpr std::string_view kNames[] = {"EMERGENCY", "ALERT",  "CRITICAL",      "ERROR",
                                                "WARNING",   "NOTICE", "INFORMATIONAL", "DEBUG"};
  return kNames[static_cast<size_t>(p)];
}

std::string LoadWarning::ToString() const {
  std::string s = file + ":" + std::to_string(line) + ": ";
  if (!rule.empty()) s += "rule \"" + rule + "\": ";
  return s + message;
}

struct RuleSet::Impl {
  std::vector<Rule> rules;
  std::vector<LoadWarning> warnings;
  std::vector<Slot> slots;
  std::vector<CompiledRule> compiled;
  // The evaluation plans: one per type name an evt.type check compares with (`type_names`,
  // found by `type_lookup`; plans[i] for type_names[i]) and the last one for every other type.
  // A plan lists the rules that can hold for an event of its type, in load order, each with its
  // condition specialised for the type (TypePlan).
  std::vector<std::string> type_names;
  StrSet type_lookup;
  std::vector<TypePlan> plans = std::vector<TypePlan>(1);  // an empty set: one empty plan
  std::deque<ENode> plan_trees;  // the plans' trees (a rule's tree is shared by the plans whose
                                 // types give its evt.type checks the same values)
  // The plan of an event by kind (non-syscall kinds) and by (arch, number) for system calls.
  std::array<uint32_t, 8> kind_plan{};
  std::array<std::vector<uint32_t>, 3> nr_plan;
  uint32_t memo_parts = 0;  // ProcessMemo values the plans' kMemo nodes index
  uint64_t id = 0;          // unique per compiled rule set (a ProcessMemo's owner)
  void BuildPlans();
  size_t PlanIndex(std::string_view type) const {
    const int i = type_lookup.Find(type);
    return i < 0 ? plans.size() - 1 : static_cast<size_t>(i);
  }
  const TypePlan& PlanFor(const core::Event& e) const {
    if (e.kind == core::EventKind::kSyscall || e.kind == core::EventKind::kTypedCall) {
      const auto arch = static_cast<size_t>(e.syscall.arch);
      if (arch < nr_plan.size() && e.syscall.nr >= 0 &&
          static_cast<size_t>(e.syscall.nr) < nr_plan[arch].size()) {
        return plans[nr_plan[arch][static_cast<size_t>(e.syscall.nr)]];
      }
    } else if (static_cast<size_t>(e.kind) < kind_plan.size()) {
      return plans[kind_plan[static_cast<size_t>(e.kind)]];
    }
    return plans[PlanIndex(EventTypeView(e))];
  }

  // Loading state.
  std::map<std::string, RawList> lists;
  std::map<std::string, RawMacro> macros;
  std::vector<RawRule> raw_rules;
  std::map<std::string, size_t> rule_index;
  size_t budget = 0;  // checks the current rule may still expand to (macros can nest)

  // Parses one YAML document; errors name `file` and the place.
  core::Status LoadYaml(const std::string& text, const std::string& file);
  core::Status LoadDocument(const YAML::Node& root, const std::string& file);
  core::Status LoadList(const YAML::Node& item, const std::string& file);
  core::Status LoadMacro(const YAML::Node& item, const std::string& file);
  core::Status LoadRule(const YAML::Node& item, const std::string& file);
  core::Status Compile();

  // Compiles `e`; sets *unsupported (and returns OK) when a field is not supported.
  core::Result<Node> CompileExpr(const Expr& e, const Place& where, std::vector<std::string>* stack,
                                 std::string* unsupported);
  core::Result<Node> CompileCheck(const std::string& field, bool has_arg, const std::string& arg,
                                  CmpOp op, std::vector<std::string> values, const Place& where,
                                  std::string* unsupported);
  core::Status ExpandList(const std::string& name, std::vector<std::string>* out,
                          std::vector<std::string>* stack, const Place& where);
  core::Result<int> SlotFor(const FieldDef* def, int index);
  core::Result<std::vector<OutputPart>> CompileOutput(const RawRule& r);
  core::Status AddException(const RawException& ex, const Place& rule_place, Node* root,
                            std::string* unsupported);
};

namespace {

// The string value of a scalar, or an error naming the place.
core::Result<std::string> Scalar(const YAML::Node& n, const std::string& file,
                                 const std::string& what) {
  if (!n.IsScalar()) return ErrorAt(PlaceOf(n, file), what + ": expected a string");
  return n.Scalar();
}

core::Result<std::vector<std::string>> StringList(const YAML::Node& n, const std::string& file,
                                                  const std::string& what) {
  if (n.IsNull()) return std::vector<std::string>{};
  if (!n.IsSequence()) return ErrorAt(PlaceOf(n, file), what + ": expected a list");
  std::vector<std::string> out;
  for (const YAML::Node& v : n) {
    auto s = Scalar(v, file, what + " item");
    if (!s.has_value()) return s.error();
    out.push_back(std::move(s).value());
  }
  return out;
}

core::Result<bool> Bool(const YAML::Node& n, const std::string& file, const std::string& what) {
  if (n.IsScalar()) {
    const std::string v = Lower(n.Scalar());
    if (v == "true" || v == "yes") return true;
    if (v == "false" || v == "no") return false;
  }
  return ErrorAt(PlaceOf(n, file), what + ": expected true or false");
}

core::Status CheckKeys(const YAML::Node& item, const std::string& file,
                       std::initializer_list<std::string_view> allowed, const std::string& kind) {
  for (auto it = item.begin(); it != item.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return ErrorAt(PlaceOf(it->first, file),
                     "unknown key \"" + key + "\" in a " + kind + " (expected one of: " + list + ")");
    }
  }
  return core::Status::Ok();
}

// override: {key: append|replace}; returns key -> "append"/"replace".
core::Result<std::map<std::string, std::string>> Overrides(const YAML::Node& item,
                                                           const std::string& file,
                                                           std::initializer_list<std::string_view> keys) {
  std::map<std::string, std::string> out;
  const YAML::Node o = item["override"];
  if (!o) return out;
  if (!o.IsMap()) return ErrorAt(PlaceOf(o, file), "override: expected a map of key: append|replace");
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string key = it->first.Scalar();
    const std::string how = it->second.IsScalar() ? it->second.Scalar() : "";
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      return ErrorAt(PlaceOf(it->first, file), "override: \"" + key + "\" cannot be overridden");
    }
    if (how != "append" && how != "replace") {
      return ErrorAt(PlaceOf(it->second, file), "override: \"" + key + "\": expected append or replace");
    }
    if (!item[key]) {
      return ErrorAt(PlaceOf(it->first, file), "override: \"" + key + "\" is not given in the item");
    }
    out[key] = how;
  }
  return out;
}

std::string Unquote(const std::string& s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

// "0.57.0" -> {0, 57, 0}; a plain integer (old style) -> {0, n, 0}; false when malformed.
bool ParseVersion(const std::string& v, std::array<long, 3>* out) {
  std::array<long, 3> parts = {0, 0, 0};
  size_t i = 0;
  std::stringstream ss(v);
  std::string piece;
  while (std::getline(ss, piece, '.')) {
    if (i >= 3 || piece.empty() ||
        !std::all_of(piece.begin(), piece.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return false;
    }
    parts[i++] = std::strtol(piece.c_str(), nullptr, 10);
  }
  if (i == 0) return false;
  if (i == 1) parts = {0, parts[0], 0};
  *out = parts;
  return true;
}

}  // namespace

core::Status RuleSet::Impl::LoadYaml(const std::string& text, const std::string& file) {
  try {
    return LoadDocument(YAML::Load(text), file);
  } catch (const YAML::Exception& e) {
    return core::InvalidArgument(file + ":" + std::to_string(e.mark.line + 1) + ":" +
                                 std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

core::Status RuleSet::Impl::LoadDocument(const YAML::Node& root, const std::string& file) {
  if (!root || root.IsNull()) return core::Status::Ok();
  if (!root.IsSequence()) return ErrorAt(PlaceOf(root, file), "a rules file is a list of items");
  for (const YAML::Node& item : root) {
    if (!item.IsMap()) return ErrorAt(PlaceOf(item, file), "expected an item (a map)");
    if (item["list"]) {
      VIGIL_RETURN_IF_ERROR(LoadList(item, file));
    } else if (item["macro"]) {
      VIGIL_RETURN_IF_ERROR(LoadMacro(item, file));
    } else if (item["rule"]) {
      VIGIL_RETURN_IF_ERROR(LoadRule(item, file));
    } else if (item["required_engine_version"]) {
      const YAML::Node v = item["required_engine_version"];
      std::array<long, 3> want{}, have{};
      ParseVersion(std::string(kEngineVersion), &have);
      if (!v.IsScalar() || !ParseVersion(v.Scalar(), &want)) {
        return ErrorAt(PlaceOf(v, file), "required_engine_version: expected a version like 0.57.0");
      }
      if (want > have) {
        return ErrorAt(PlaceOf(v, file), "required_engine_version " + v.Scalar() +
                                             " is newer than this engine's " +
                                             std::string(kEngineVersion));
      }
    } else if (item["required_plugin_versions"]) {
      // Vigil reads its fields without Falco plugins; the requirement does not apply.
      continue;
    } else {
      return ErrorAt(PlaceOf(item, file),
                     "unknown item: expected list, macro, rule, required_engine_version or "
                     "required_plugin_versions");
    }
  }
  return core::Status::Ok();
}

core::Status RuleSet::Impl::LoadList(const YAML::Node& item, const std::string& file) {
  VIGIL_RETURN_IF_ERROR(CheckKeys(item, file, {"list", "items", "append", "override"}, "list"));
  auto name = Scalar(item["list"], file, "list");
  if (!name.has_value()) return name.error();
  if (!item["items"]) return ErrorAt(PlaceOf(item, file), "list \"" + *name + "\": no items");
  auto items = StringList(item["items"], file, "list \"" + *name + "\": items");
  if (!items.has_value()) return items.error();
  auto ov = Overrides(item, file, {"items"});
  if (!ov.has_value()) return ov.error();
  bool append = ov->count("items") && ov->at("items") == "append";
  if (item["append"]) {
    auto a = Bool(item["append"], file, "append");
    if (!a.has_value()) return a.error();
    append = append || *a;
  }
  const Place place = PlaceOf(item, file);
  if (append) {
    auto it = lists.find(*name);
    if (it == lists.end()) return ErrorAt(place, "list \"" + *name + "\": append to a list not defined before");
    it->second.items.insert(it->second.items.end(), items->begin(), items->end());
    return core::Status::Ok();
  }
  lists[*name] = {std::move(items).value(), place};
  return core::Status::Ok();
}

core::Status RuleSet::Impl::LoadMacro(const YAML::Node& item, const std::string& file) {
  VIGIL_RETURN_IF_ERROR(CheckKeys(item, file, {"macro", "condition", "append", "override"}, "macro"));
  auto name = Scalar(item["macro"], file, "macro");
  if (!name.has_value()) return name.error();
  if (!item["condition"]) return ErrorAt(PlaceOf(item, file), "macro \"" + *name + "\": no condition");
  auto cond = Scalar(item["condition"], file, "macro \"" + *name + "\": condition");
  if (!cond.has_value()) return cond.error();
  auto ov = Overrides(item, file, {"condition"});
  if (!ov.has_value()) return ov.error();
  bool append = ov->count("condition") && ov->at("condition") == "append";
  if (item["append"]) {
    auto a = Bool(item["append"], file, "append");
    if (!a.has_value()) return a.error();
    append = append || *a;
  }
  const Place place = PlaceOf(item["condition"], file);
  if (append) {
    auto it = macros.find(*name);
    if (it == macros.end()) return ErrorAt(place, "macro \"" + *name + "\": append to a macro not defined before");
    it->second.condition += " " + *cond;
  } else {
    macros[*name] = {*cond, place};
  }
  // Syntax is checked at once, so the error points at this file and line.
  auto parsed = ParseCondition(macros[*name].condition);
  if (!parsed.has_value()) {
    return ErrorAt(place, "macro \"" + *name + "\": condition: " + parsed.error().message());
  }
  return core::Status::Ok();
}

namespace {

core::Result<Priority> ParsePriority(const YAML::Node& n, const std::string& file) {
  static const std::pair<std::string_view, Priority> kNames[] = {
      {"emergency", Priority::kEmergency}, {"alert", Priority::kAlert},
      {"critical", Priority::kCritical},   {"error", Priority::kError},
      {"warning", Priority::kWarning},     {"notice", Priority::kNotice},
      {"informational", Priority::kInformational}, {"info", Priority::kInformational},
      {"debug", Priority::kDebug}};
  if (n.IsScalar()) {
    const std::string v = Lower(n.Scalar());
    for (const auto& [name, p] : kNames) {
      if (v == name) return p;
    }
  }
  return ErrorAt(PlaceOf(n, file),
                 "priority: expected emergency, alert, critical, error, warning, notice, "
                 "informational or debug");
}

core::Result<RuleAction> ParseAction(const YAML::Node& n, const std::string& file) {
  if (!n.IsMap()) return ErrorAt(PlaceOf(n, file), "action: expected a map (type, mode, fallback)");
  VIGIL_RETURN_IF_ERROR(
      CheckKeys(n, file, {"type", "mode", "fallback", "proposed", "timeout"}, "rule action"));
  RuleAction a;
  auto pick = [&](const char* key, std::initializer_list<std::string_view> allowed,
                  std::string* out) -> core::Status {
    if (!n[key]) return core::Status::Ok();
    const YAML::Node v = n[key];
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string list;
      for (std::string_view x : allowed) list += (list.empty() ? "" : ", ") + std::string(x);
      return ErrorAt(PlaceOf(v, file), std::string("action.") + key + ": expected one of: " + list);
    }
    *out = s;
    return core::Status::Ok();
  };
  VIGIL_RETURN_IF_ERROR(pick("type", {"alert", "deny", "kill", "freeze", "block-network", "escalate"},
                             &a.type));
  VIGIL_RETURN_IF_ERROR(pick("mode", {"monitor", "enforce"}, &a.mode));
  VIGIL_RETURN_IF_ERROR(pick("fallback", {"allow", "deny", "alert"}, &a.fallback));
  VIGIL_RETURN_IF_ERROR(
      pick("proposed", {"alert", "kill", "freeze", "block-network"}, &a.proposed));
  a.mode_given = static_cast<bool>(n["mode"]);
  a.fallback_given = static_cast<bool>(n["fallback"]);
  for (const char* key : {"proposed", "timeout"}) {
    if (n[key] && a.type != "escalate") {
      return ErrorAt(PlaceOf(n[key], file),
                     std::string("action.") + key + ": only an escalate action takes one");
    }
  }
  if (const YAML::Node t = n["timeout"]) {
    constexpr uint64_t kMaxEscalationSeconds = uint64_t{30} * 24 * 3600;
    auto seconds = t.IsScalar() ? core::ParseDurationSeconds(t.Scalar())
                                : core::Result<uint64_t>(core::InvalidArgument("not a scalar"));
    if (!seconds.has_value() || *seconds < 1 || *seconds > kMaxEscalationSeconds) {
      return ErrorAt(PlaceOf(t, file),
                     "action.timeout: expected a duration from 1s to 30 days, like 90s, 15m or 2h");
    }
    a.timeout_seconds = *seconds;
  }
  return a;
}

core::Result<std::vector<RawException>> ParseExceptions(const YAML::Node& n, const std::string& file,
                                                        const std::string& rule) {
  std::vector<RawException> out;
  if (n.IsNull()) return out;
  if (!n.IsSequence()) return ErrorAt(PlaceOf(n, file), "rule \"" + rule + "\": exceptions: expected a list");
  for (const YAML::Node& e : n) {
    if (!e.IsMap()) return ErrorAt(PlaceOf(e, file), "exception: expected a map");
    VIGIL_RETURN_IF_ERROR(CheckKeys(e, file, {"name", "fields", "comps", "values"}, "exception"));
    RawException ex;
    ex.place = PlaceOf(e, file);
    auto name = Scalar(e["name"], file, "exception name");
    if (!name.has_value()) return name.error();
    ex.name = *name;
    const std::string what = "exception \"" + ex.name + "\"";
    if (!e["fields"]) return ErrorAt(ex.place, what + ": no fields");
    if (e["fields"].IsScalar()) {
      ex.single_field = true;
      ex.fields = {e["fields"].Scalar()};
      ex.comps = {e["comps"] ? e["comps"].Scalar() : "in"};
      if (e["comps"] && !e["comps"].IsScalar()) {
        return ErrorAt(PlaceOf(e["comps"], file), what + ": one field takes one comparison");
      }
    } else {
      auto fields = StringList(e["fields"], file, what + ": fields");
      if (!fields.has_value()) return fields.error();
      ex.fields = *fields;
      if (e["comps"]) {
        auto comps = StringList(e["comps"], file, what + ": comps");
        if (!comps.has_value()) return comps.error();
        ex.comps = *comps;
      } else {
        ex.comps.assign(ex.fields.size(), "=");
      }
      if (ex.comps.size() != ex.fields.size()) {
        return ErrorAt(ex.place, what + ": fields and comps differ in length");
      }
    }
    if (e["values"]) {
      if (!e["values"].IsSequence()) return ErrorAt(PlaceOf(e["values"], file), what + ": values: expected a list");
      for (const YAML::Node& v : e["values"]) {
        if (ex.single_field) {
          ex.values.push_back({v});
          continue;
        }
        if (!v.IsSequence() || v.size() != ex.fields.size()) {
          return ErrorAt(PlaceOf(v, file), what + ": each value must be a list of " +
                                               std::to_string(ex.fields.size()) + " items");
        }
        std::vector<YAML::Node> tuple;
        for (const YAML::Node& x : v) tuple.push_back(x);
        ex.values.push_back(std::move(tuple));
      }
    }
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace

core::Status RuleSet::Impl::LoadRule(const YAML::Node& item, const std::string& file) {
  VIGIL_RETURN_IF_ERROR(CheckKeys(item, file,
                                  {"rule", "desc", "condition", "output", "priority", "tags",
                                   "enabled", "exceptions", "source", "append", "override",
                                   "warn_evttypes", "skip-if-unknown-filter", "action"},
                                  "rule"));
  auto name = Scalar(item["rule"], file, "rule");
  if (!name.has_value()) return name.error();
  const Place place = PlaceOf(item, file);
  auto ov = Overrides(item, file,
                      {"condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
                       "action"});
  if (!ov.has_value()) return ov.error();
  bool old_append = false;
  if (item["append"]) {
    auto a = Bool(item["append"], file, "append");
    if (!a.has_value()) return a.error();
    old_append = *a;
  }
  auto existing = rule_index.find(*name);
  const bool modifies = old_append || !ov->empty() ||
                        (existing != rule_index.end() && !item["condition"] && item["enabled"]);
  RawRule fresh;
  RawRule* r = &fresh;
  if (modifies) {
    if (existing == rule_index.end()) {
      return ErrorAt(place, "rule \"" + *name + "\": appends to or overrides a rule not defined before");
    }
    r = &raw_rules[existing->second];
  } else {
    fresh.rule.name = *name;
    fresh.place = place;
    fresh.rule.file = file;
    fresh.rule.line = place.line;
    for (const char* key : {"condition", "output", "priority"}) {
      if (!item[key]) return ErrorAt(place, "rule \"" + *name + "\": no " + key);
    }
  }
  const std::string what = "rule \"" + *name + "\"";
  auto mode = [&](const char* key) -> std::string {
    if (old_append) return key == std::string("condition") || key == std::string("exceptions") ? "append" : "replace";
    auto it = ov->find(key);
    return it == ov->end() ? "replace" : it->second;
  };
  if (item["condition"]) {
    auto c = Scalar(item["condition"], file, what + ": condition");
    if (!c.has_value()) return c.error();
    if (modifies && mode("condition") == "append") {
      r->rule.condition += " " + *c;
    } else {
      r->rule.condition = *c;
    }
    r->condition_place = PlaceOf(item["condition"], file);
    auto parsed = ParseCondition(r->rule.condition);
    if (!parsed.has_value()) {
      return ErrorAt(r->condition_place, what + ": condition: " + parsed.error().message());
    }
  }
  for (const char* key : {"desc", "output"}) {
    if (!item[key]) continue;
    auto v = Scalar(item[key], file, what + ": " + key);
    if (!v.has_value()) return v.error();
    std::string& field = key == std::string("desc") ? r->rule.desc : r->rule.output;
    field = modifies && mode(key) == "append" ? field + " " + *v : *v;
  }
  if (item["priority"]) {
    auto p = ParsePriority(item["priority"], file);
    if (!p.has_value()) return p.error();
    r->rule.priority = *p;
  }
  if (item["tags"]) {
    auto t = StringList(item["tags"], file, what + ": tags");
    if (!t.has_value()) return t.error();
    if (modifies && mode("tags") == "append") {
      r->rule.tags.insert(r->rule.tags.end(), t->begin(), t->end());
    } else {
      r->rule.tags = *t;
    }
  }
  if (item["enabled"]) {
    auto e = Bool(item["enabled"], file, what + ": enabled");
    if (!e.has_value()) return e.error();
    r->rule.enabled = *e;
  }
  if (item["source"]) {
    auto s = Scalar(item["source"], file, what + ": source");
    if (!s.has_value()) return s.error();
    r->rule.source = *s;
  }
  if (item["exceptions"]) {
    auto ex = ParseExceptions(item["exceptions"], file, *name);
    if (!ex.has_value()) return ex.error();
    if (!(modifies && mode("exceptions") == "append")) r->exceptions.clear();
    r->exceptions.insert(r->exceptions.end(), ex->begin(), ex->end());
  }
  if (item["action"]) {
    auto a = ParseAction(item["action"], file);
    if (!a.has_value()) return a.error();
    r->rule.action = *a;
    r->rule.has_action = true;
  }
  if (!modifies) {
    if (existing != rule_index.end()) {
      raw_rules[existing->second] = std::move(fresh);  // a redefinition replaces the rule
    } else {
      rule_index[*name] = raw_rules.size();
      raw_rules.push_back(std::move(fresh));
    }
  }
  return core::Status::Ok();
}

core::Status RuleSet::Impl::ExpandList(const std::string& name, std::vector<std::string>* out,
                                       std::vector<std::string>* stack, const Place& where) {
  if (std::find(stack->begin(), stack->end(), name) != stack->end()) {
    return ErrorAt(where, "list \"" + name + "\" refers to itself");
  }
  stack->push_back(name);
  for (const std::string& item : lists.at(name).items) {
    if (lists.count(item) != 0) {
      VIGIL_RETURN_IF_ERROR(ExpandList(item, out, stack, where));
    } else {
      out->push_back(Unquote(item));
    }
  }
  stack->pop_back();
  return core::Status::Ok();
}

core::Result<int> RuleSet::Impl::SlotFor(const FieldDef* def, int index) {
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].def == def && slots[i].index == index) return static_cast<int>(i);
  }
  slots.push_back({def, index});
  return static_cast<int>(slots.size() - 1);
}

core::Result<Node> RuleSet::Impl::CompileCheck(const std::string& field, bool has_arg,
                                               const std::string& arg, CmpOp op,
                                               std::vector<std::string> values, const Place& where,
                                               std::string* unsupported) {
  const FieldDef* def = FindField(field);
  if (def == nullptr) {
    *unsupported = "field \"" + field + (has_arg ? "[" + arg + "]" : "") + "\" is not supported";
    return Node{};
  }
  int index = -1;
  if (has_arg) {
    if (def->arg == ArgUse::kNone) return ErrorAt(where, "field \"" + field + "\" takes no [argument]");
    char* end = nullptr;
    const long v = std::strtol(arg.c_str(), &end, 10);
    if (arg.empty() || *end != '\0' || v < 0 || v > 64) {
      return ErrorAt(where, "field \"" + field + "\": [" + arg + "] is not an index 0..64");
    }
    index = static_cast<int>(v);
  } else if (def->arg == ArgUse::kRequiredIndex) {
    return ErrorAt(where, "field \"" + field + "\" needs an [index]");
  }
  Node n;
  n.kind = Node::Kind::kCheck;
  n.type = def->type;
  n.op = op;
  auto slot = SlotFor(def, index);
  if (!slot.has_value()) return slot.error();
  n.slot = *slot;
  const std::string opname(CmpOpName(op));
  if (op == CmpOp::kExists) return n;
  if (!TakesList(op) && values.size() != 1) {
    return ErrorAt(where, "\"" + opname + "\" takes one value");
  }
  if (def->type != FieldType::kString && (IsStringOnly(op) || op == CmpOp::kPmatch)) {
    return ErrorAt(where, "field \"" + field + "\" is not a string: \"" + opname + "\" does not apply");
  }
  if (def->type == FieldType::kString &&
      (op == CmpOp::kLt || op == CmpOp::kLe || op == CmpOp::kGt || op == CmpOp::kGe)) {
    return ErrorAt(where, "field \"" + field + "\" is a string: \"" + opname + "\" does not apply");
  }
  if (def->type == FieldType::kIpNet) {
    if (op != CmpOp::kEq && op != CmpOp::kNe && op != CmpOp::kIn && op != CmpOp::kIntersects) {
      return ErrorAt(where, "field \"" + field + "\" is an address: \"" + opname +
                                "\" does not apply (use =, != or in)");
    }
    for (const std::string& v : values) {
      IpNet net;
      if (!ParseIpNet(v, &net)) {
        return ErrorAt(where, "field \"" + field + "\": \"" + v + "\" is not an address or CIDR block");
      }
      n.nets.push_back(net);
    }
    return n;
  }
  if (def->type == FieldType::kNumber) {
    for (const std::string& v : values) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(d)) {
        return ErrorAt(where, "field \"" + field + "\": \"" + v + "\" is not a number");
      }
      n.nums.push_back(d);
    }
    return n;
  }
  if (def->type == FieldType::kBool) {
    for (std::string& v : values) {
      v = Lower(v);
      if (v != "true" && v != "false") {
        return ErrorAt(where, "field \"" + field + "\": expected true or false, not \"" + v + "\"");
      }
    }
  }
  if (op == CmpOp::kIContains) {
    for (std::string& v : values) v = Lower(v);
  }
  if (op == CmpOp::kRegex) {
    if (values[0].size() > kMaxRegexBytes) {
      return ErrorAt(where, "field \"" + field + "\": regex longer than " +
                                std::to_string(kMaxRegexBytes) + " bytes");
    }
    try {
      n.re = std::make_shared<const std::regex>(values[0], std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return ErrorAt(where, "field \"" + field + "\": bad regex \"" + values[0] + "\": " + e.what());
    }
  }
  if (op == CmpOp::kIn || op == CmpOp::kIntersects) {
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
  }
  if (op == CmpOp::kGlob || op == CmpOp::kIGlob) n.glob.Compile(values[0], op == CmpOp::kIGlob);
  n.strs = std::move(values);
  return n;
}

core::Result<Node> RuleSet::Impl::CompileExpr(const Expr& e, const Place& where,
                                              std::vector<std::string>* stack,
                                              std::string* unsupported) {
  if (budget == 0) {
    return ErrorAt(where, "the condition expands to more than " + std::to_string(kMaxRuleNodes) +
                              " checks and operators (macros nested too deeply)");
  }
  --budget;
  switch (e.kind) {
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr:
    case Expr::Kind::kNot: {
      Node n;
      n.kind = e.kind == Expr::Kind::kAnd ? Node::Kind::kAnd
               : e.kind == Expr::Kind::kOr ? Node::Kind::kOr
                                           : Node::Kind::kNot;
      for (const ExprPtr& c : e.children) {
        auto child = CompileExpr(*c, where, stack, unsupported);
        if (!child.has_value()) return child;
        if (!unsupported->empty()) return Node{};
        n.children.push_back(std::move(child).value());
      }
      return n;
    }
    case Expr::Kind::kMacro: {
      auto it = macros.find(e.macro);
      if (it == macros.end()) {
        return ErrorAt(where, "column " + std::to_string(e.column) + ": undefined macro \"" +
                                  e.macro + "\"");
      }
      if (std::find(stack->begin(), stack->end(), e.macro) != stack->end()) {
        return ErrorAt(it->second.place, "macro \"" + e.macro + "\" refers to itself");
      }
      auto parsed = ParseCondition(it->second.condition);
      if (!parsed.has_value()) return ErrorAt(it->second.place, parsed.error().message());
      stack->push_back(e.macro);
      auto n = CompileExpr(**parsed, it->second.place, stack, unsupported);
      stack->pop_back();
      if (n.has_value() && !unsupported->empty() && unsupported->find("(via macro") == std::string::npos) {
        *unsupported += " (via macro \"" + e.macro + "\" at " + it->second.place.ToString() + ")";
      }
      return n;
    }
    case Expr::Kind::kCheck: {
      std::vector<std::string> values;
      for (const Value& v : e.values) {
        if (!v.quoted && TakesList(e.op) && lists.count(v.text) != 0) {
          std::vector<std::string> list_stack;
          VIGIL_RETURN_IF_ERROR(ExpandList(v.text, &values, &list_stack, where));
        } else {
          values.push_back(v.text);
        }
      }
      Place at = where;
      at.column = 0;
      auto n = CompileCheck(e.field, e.has_arg, e.arg, e.op, std::move(values), at, unsupported);
      if (!n.has_value()) {
        return core::InvalidArgument(n.error().message() + " (column " + std::to_string(e.column) + ")");
      }
      return n;
    }
  }
  return Node{};
}

core::Status RuleSet::Impl::AddException(const RawException& ex, const Place& rule_place,
                                         Node* root, std::string* unsupported) {
  if (ex.values.empty()) return core::Status::Ok();
  Node any;
  any.kind = Node::Kind::kOr;
  for (const std::vector<YAML::Node>& tuple : ex.values) {
    Node all;
    all.kind = Node::Kind::kAnd;
    for (size_t i = 0; i < ex.fields.size(); ++i) {
      static const std::pair<std::string_view, CmpOp> kOps[] = {
          {"=", CmpOp::kEq}, {"!=", CmpOp::kNe}, {"<", CmpOp::kLt}, {"<=", CmpOp::kLe},
          {">", CmpOp::kGt}, {">=", CmpOp::kGe}, {"contains", CmpOp::kContains},
          {"icontains", CmpOp::kIContains}, {"startswith", CmpOp::kStartsWith},
          {"endswith", CmpOp::kEndsWith}, {"glob", CmpOp::kGlob}, {"in", CmpOp::kIn},
          {"intersects", CmpOp::kIntersects}, {"pmatch", CmpOp::kPmatch}};
      const auto* op = std::find_if(std::begin(kOps), std::end(kOps),
                                    [&](const auto& p) { return p.first == ex.comps[i]; });
      if (op == std::end(kOps)) {
        return ErrorAt(ex.place, "exception \"" + ex.name + "\": unknown comparison \"" + ex.comps[i] + "\"");
      }
      std::vector<std::string> values;
      const YAML::Node& v = ex.single_field ? tuple[0] : tuple[i];
      if (ex.single_field && TakesList(op->second)) {
        // One field: the values list holds the alternatives.
        for (const std::vector<YAML::Node>& t : ex.values) {
          if (!t[0].IsScalar()) return ErrorAt(PlaceOf(t[0], rule_place.file), "exception value: expected a string");
          values.push_back(t[0].Scalar());
        }
      } else if (v.IsSequence()) {
        for (const YAML::Node& x : v) values.push_back(x.IsScalar() ? x.Scalar() : "");
      } else if (v.IsScalar()) {
        if (TakesList(op->second) && lists.count(v.Scalar()) != 0) {
          std::vector<std::string> stack;
          VIGIL_RETURN_IF_ERROR(ExpandList(v.Scalar(), &values, &stack, ex.place));
        } else {
          values.push_back(v.Scalar());
        }
      } else {
        return ErrorAt(PlaceOf(v, rule_place.file), "exception value: expected a string or a list");
      }
      auto n = CompileCheck(ex.fields[i], false, "", op->second, std::move(values), ex.place, unsupported);
      if (!n.has_value()) return n.error();
      if (!unsupported->empty()) {
        *unsupported += " (in exception \"" + ex.name + "\")";
        return core::Status::Ok();
      }
      all.children.push_back(std::move(n).value());
    }
    any.children.push_back(std::move(all));
    if (ex.single_field) break;  // every alternative is in the one `in` check
  }
  Node negated;
  negated.kind = Node::Kind::kNot;
  negated.children.push_back(std::move(any));
  Node joined;
  joined.kind = Node::Kind::kAnd;
  joined.children.push_back(std::move(*root));
  joined.children.push_back(std::move(negated));
  *root = std::move(joined);
  return core::Status::Ok();
}

core::Result<std::vector<OutputPart>> RuleSet::Impl::CompileOutput(const RawRule& r) {
  std::vector<OutputPart> parts;
  std::vector<std::string> missing;  // output fields Vigil does not have
  const std::string& s = r.rule.output;
  std::string text;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%' || i + 1 >= s.size()) {
      text.push_back(s[i]);
      continue;
    }
    size_t j = i + 1;
    const bool paren = s[j] == '(';
    if (paren) ++j;
    const size_t start = j;
    while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_')) ++j;
    std::string name = s.substr(start, j - start);
    std::string arg;
    bool has_arg = false;
    if (j < s.size() && s[j] == '[') {
      const size_t close = s.find(']', j);
      if (close != std::string::npos) {
        arg = s.substr(j + 1, close - j - 1);
        has_arg = true;
        j = close + 1;
      }
    }
    if (paren && j < s.size() && s[j] == ')') ++j;
    if (name.empty()) {
      text.push_back('%');
      continue;
    }
    if (!text.empty()) parts.push_back({std::move(text), -1});
    text.clear();
    const FieldDef* def = FindField(name);
    int index = -1;
    if (def != nullptr && has_arg) {
      char* end = nullptr;
      index = static_cast<int>(std::strtol(arg.c_str(), &end, 10));
      if (def->arg == ArgUse::kNone || *end != '\0') def = nullptr;
    }
    if (def == nullptr) {
      missing.push_back(name + (has_arg ? "[" + arg + "]" : ""));
      parts.push_back({"<NA>", -1});
    } else {
      auto slot = SlotFor(def, index);
      if (!slot.has_value()) return slot.error();
      parts.push_back({"", *slot});
    }
    i = j - 1;
  }
  if (!text.empty()) parts.push_back({std::move(text), -1});
  if (!missing.empty()) {
    std::string names;
    for (const std::string& m : missing) names += (names.empty() ? "" : ", ") + m;
    warnings.push_back({r.rule.file, r.rule.line, r.rule.name,
                        "output field" + std::string(missing.size() > 1 ? "s " : " ") + names +
                            (missing.size() > 1 ? " are" : " is") +
                            " not supported; printed as <NA>"});
  }
  return parts;
}

namespace {

// Every type name an evt.type =, !=, in or intersects check of `n` compares with.
void CollectTypeNames(const Node& n, const std::vector<Slot>& slots, std::set<std::string>* out) {
  if (IsTypeCheck(n, slots) && (n.op == CmpOp::kEq || n.op == CmpOp::kNe || n.op == CmpOp::kIn ||
                                n.op == CmpOp::kIntersects)) {
    out->insert(n.strs.begin(), n.strs.end());
  }
  for (const Node& c : n.children) CollectTypeNames(c, slots, out);
}

void CollectTypeChecks(const Node& n, const std::vector<Slot>& slots, std::vector<const Node*>* out) {
  if (IsTypeCheck(n, slots)) out->push_back(&n);
  for (const Node& c : n.children) CollectTypeChecks(c, slots, out);
}

// Whether an event can have evt.type `name` (EventTypeView's names: the system call tables and
// the names of the other kinds). A plan for any other name would never be used.
bool IsEventTypeName(std::string_view name) {
  static const std::set<std::string, std::less<>>* names = [] {
    auto* out = new std::set<std::string, std::less<>>();
    core::Event e;
    for (int k = 0; k < 8; ++k) {
      e.kind = static_cast<core::EventKind>(k);
      out->emplace(EventTypeView(e));
    }
    for (core::Arch arch : {core::Arch::kUnknown, core::Arch::kI386, core::Arch::kX86_64}) {
      for (int nr = 0; nr < core::kMaxSyscallNr; ++nr) out->emplace(core::SyscallName(arch, nr));
    }
    return out;
  }();
  return names->find(name) != names->end();
}

// A rule whose evt.type checks take more than this many different sets of values across the
// plans' types gets one tree for all of them (checks kept), bounding the plans' size.
constexpr size_t kMaxTreesPerRule = 16;

std::atomic<uint64_t> next_rules_id{1};

}  // namespace

// One plan per type name the conditions compare evt.type with, and one for every other type:
// within a plan's type every evt.type =, !=, in and intersects check has a known value (the
// other plan's types differ from every name compared with), so each rule's condition is
// specialised for it (Planner) and left out of the plans where it folds to false.
void RuleSet::Impl::BuildPlans() {
  id = next_rules_id.fetch_add(1);
  std::set<std::string> names;
  for (const CompiledRule& c : compiled) CollectTypeNames(c.root, slots, &names);
  for (const std::string& n : names) {
    if (IsEventTypeName(n)) type_names.push_back(n);  // the other plan covers the rest
  }
  type_lookup.Build(type_names);
  std::vector<PlanType> types;
  for (const std::string& t : type_names) types.push_back({t, false, false});
  types.push_back({{}, true, false});
  plans.assign(types.size(), TypePlan{});
  std::map<std::vector<const Node*>, uint32_t> memo_ids;
  Planner planner(slots, &memo_ids);
  for (size_t ci = 0; ci < compiled.size(); ++ci) {
    const Node& root = compiled[ci].root;
    std::vector<const Node*> checks;
    CollectTypeChecks(root, slots, &checks);
    // Types that give this rule's evt.type checks the same values share one specialised tree.
    std::vector<std::vector<int8_t>> values(types.size());
    std::set<std::vector<int8_t>> distinct;
    for (size_t ti = 0; ti < types.size(); ++ti) {
      for (const Node* n : checks) values[ti].push_back(types[ti].Value(*n));
      distinct.insert(values[ti]);
    }
    const bool one_tree = distinct.size() > kMaxTreesPerRule;
    const PlanType any{{}, false, true};
    std::map<std::vector<int8_t>, std::pair<int8_t, PlannedRule>> by_values;
    for (size_t ti = 0; ti < types.size(); ++ti) {
      if (one_tree) values[ti].clear();
      auto it = by_values.find(values[ti]);
      if (it == by_values.end()) {
        const PlanType& t = one_tree ? any : types[ti];
        ENode tree, plain;
        const int8_t constant = planner.Plan(root, t, true, &tree);
        PlannedRule planned{static_cast<uint32_t>(ci), nullptr, nullptr};
        if (constant == 1) {
          planned.root = planned.plain = &plan_trees.emplace_back();
        } else if (constant < 0) {
          planner.Plan(root, t, false, &plain);
          planned.root = &plan_trees.emplace_back(std::move(tree));
          planned.plain = &plan_trees.emplace_back(std::move(plain));
        }
        it = by_values.emplace(values[ti], std::make_pair(constant, planned)).first;
      }
      if (it->second.first != 0) plans[ti].rules.push_back(it->second.second);
    }
  }
  memo_parts = static_cast<uint32_t>(memo_ids.size());
  core::Event e;
  for (size_t k = 0; k < kind_plan.size(); ++k) {
    e.kind = static_cast<core::EventKind>(k);
    kind_plan[k] = static_cast<uint32_t>(PlanIndex(EventTypeView(e)));
  }
  for (size_t arch = 0; arch < nr_plan.size(); ++arch) {
    nr_plan[arch].resize(core::kMaxSyscallNr);
    for (int nr = 0; nr < core::kMaxSyscallNr; ++nr) {
      nr_plan[arch][static_cast<size_t>(nr)] = static_cast<uint32_t>(
          PlanIndex(core::SyscallName(static_cast<core::Arch>(arch), nr)));
    }
  }
}

core::Status RuleSet::Impl::Compile() {
  for (RawRule& r : raw_rules) {
    Rule rule = r.rule;
    if (rule.enabled && rule.source != "syscall") {
      rule.enabled = false;
      rule.disabled_reason = "source \"" + rule.source + "\" is not one Vigil reads";
      warnings.push_back({rule.file, rule.line, rule.name, rule.disabled_reason});
    }
    if (!rule.enabled) {
      rules.push_back(std::move(rule));
      continue;
    }
    auto parsed = ParseCondition(rule.condition);
    if (!parsed.has_value()) {
      return ErrorAt(r.condition_place, "rule \"" + rule.name + "\": condition: " + parsed.error().message());
    }
    std::string unsupported;
    std::vector<std::string> stack;
    budget = kMaxRuleNodes;
    auto root = CompileExpr(**parsed, r.condition_place, &stack, &unsupported);
    if (!root.has_value()) {
      return core::InvalidArgument(root.error().message() + " in rule \"" + rule.name + "\"");
    }
    Node node = std::move(root).value();
    for (const RawException& ex : r.exceptions) {
      if (!unsupported.empty()) break;
      VIGIL_RETURN_IF_ERROR(AddException(ex, r.place, &node, &unsupported));
    }
    if (!unsupported.empty()) {
      rule.enabled = false;
      rule.disabled_reason = unsupported;
      warnings.push_back({rule.file, rule.line, rule.name, "disabled: " + unsupported});
      rules.push_back(std::move(rule));
      continue;
    }
    auto output = CompileOutput(r);
    if (!output.has_value()) return output.error();
    compiled.push_back({rules.size(), std::move(node), std::move(output).value()});
    rules.push_back(std::move(rule));
  }
  for (CompiledRule& c : compiled) {
    Simplify(&c.root);
    Finalize(&c.root);
  }
  BuildPlans();
  return core::Status::Ok();
}

namespace {

// Per-thread buffers of one evaluation, reused so that evaluating allocates nothing once the
// strings they hold have grown to size. A field's value belongs to the evaluation whose number
// its stamp holds, so starting an evaluation clears nothing.
struct Scratch {
  std::vector<FieldValue> values;
  std::vector<uint32_t> stamp;
  std::vector<IpNet> ips;  // an address field's value, parsed (when ip_stamp is the evaluation's)
  std::vector<uint8_t> ip_valid;
  std::vector<uint32_t> ip_stamp;
  uint32_t epoch = 0;
};

// Evaluates conditions on one event: each field is extracted at most once, when a check first
// reads it (fields no evaluated check reads are never extracted).
class Evaluator {
 public:
  Evaluator(const std::vector<Slot>& slots, const EvalInput& in, Scratch* scratch)
      : slots_(slots),
        in_(in),
        values_(scratch->values),
        stamp_(scratch->stamp),
        ips_(scratch->ips),
        ip_valid_(scratch->ip_valid),
        ip_stamp_(scratch->ip_stamp) {
    if (values_.size() < slots.size()) {
      values_.resize(slots.size());
      stamp_.resize(slots.size(), 0);
      ips_.resize(slots.size());
      ip_valid_.resize(slots.size(), 0);
      ip_stamp_.resize(slots.size(), 0);
    }
    if (++scratch->epoch == 0) {  // wrapped: no stamp may equal a new evaluation's number
      std::fill(stamp_.begin(), stamp_.end(), 0);
      std::fill(ip_stamp_.begin(), ip_stamp_.end(), 0);
      scratch->epoch = 1;
    }
    epoch_ = scratch->epoch;
  }

  // Forgets every extracted value (the reference evaluation extracts afresh for each rule).
  void Forget(Scratch* scratch) {
    Evaluator fresh(slots_, in_, scratch);
    epoch_ = fresh.epoch_;
  }

  // A field read again (several rules' checks read fd.name) costs a comparison: only the first
  // read of an evaluation calls Extract.
  [[gnu::always_inline]] inline const FieldValue& Get(int slot) {
    const auto i = static_cast<size_t>(slot);
    return stamp_[i] == epoch_ ? values_[i] : Extract(i);
  }

  [[gnu::noinline]] const FieldValue& Extract(size_t i) {
    FieldValue& v = values_[i];
    v.Reset();
    slots_[i].def->extract(in_, slots_[i].index, &v);
    stamp_[i] = epoch_;
    return v;
  }

  bool Eval(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kAnd:
        for (const Node& c : n.children) {
          if (!(c.kind == Node::Kind::kCheck ? Check(c) : Eval(c))) return false;
        }
        return true;
      case Node::Kind::kOr:
        for (const Node& c : n.children) {
          if (c.kind == Node::Kind::kCheck ? Check(c) : Eval(c)) return true;
        }
        return false;
      case Node::Kind::kNot:
        return !Eval(n.children[0]);
      case Node::Kind::kCheck:
        break;
    }
    return Check(n);
  }

  // A specialised tree (TypePlan); `memo` (nullptr: none) holds its kMemo parts' values.
  bool Eval(const ENode& n) {
    switch (n.kind) {
      case ENode::Kind::kAnd:
        for (const ENode& c : n.children) {
          if (!(c.kind == ENode::Kind::kCheck ? Check(*c.check) : Eval(c))) return false;
        }
        return true;
      case ENode::Kind::kOr:
        for (const ENode& c : n.children) {
          if (c.kind == ENode::Kind::kCheck ? Check(*c.check) : Eval(c)) return true;
        }
        return false;
      case ENode::Kind::kNot:
        return !Eval(n.children[0]);
      case ENode::Kind::kMemo: {
        if (memo_ == nullptr) return Eval(n.children[0]);
        int8_t& v = memo_[n.memo];
        if (v >= 0) {
          ++memo_reused_;
        } else {
          v = Eval(n.children[0]) ? 1 : 0;
        }
        return v != 0;
      }
      case ENode::Kind::kCheck:
        break;
    }
    return Check(*n.check);
  }

  void UseMemo(int8_t* values) { memo_ = values; }
  const int8_t* memo() const { return memo_; }
  uint64_t memo_reused() const { return memo_reused_; }

  // One check (inlined into the and/or loops: most nodes are checks).
  [[gnu::always_inline]] inline bool Check(const Node& n) {
    const FieldValue& v = Get(n.slot);
    if (!v.present) return false;
    if (n.op == CmpOp::kExists) return true;
    if (n.type == FieldType::kNumber) return CompareNumber(n, v.num);
    if (n.type == FieldType::kIpNet) return CompareIps(n, v);
    if (n.type == FieldType::kBool && (n.op == CmpOp::kEq || n.op == CmpOp::kNe)) {
      // A bool field and check hold only "true" or "false" (one value), which differ in length.
      return (v.strs[0].size() == n.strs[0].size()) == (n.op == CmpOp::kEq);
    }
    for (std::string_view s : v.strs) {
      if (CompareString(n, s)) return true;
    }
    return false;
  }

  // An address field's values against an address check; each value is parsed once per event.
  bool CompareIps(const Node& n, const FieldValue& v) {
    const auto i = static_cast<size_t>(n.slot);
    if (v.strs.size() != 1) {
      return std::any_of(v.strs.begin(), v.strs.end(), [&](std::string_view s) {
        IpNet ip;
        return ParseIp(s, &ip) && CompareIpNet(n, ip);
      });
    }
    if (ip_stamp_[i] != epoch_) {
      ip_valid_[i] = ParseIp(v.strs[0], &ips_[i]) ? 1 : 0;
      ip_stamp_[i] = epoch_;
    }
    return ip_valid_[i] != 0 && CompareIpNet(n, ips_[i]);
  }

  std::string Output(const std::vector<OutputPart>& parts) {
    std::string out;
    out.reserve(256);
    for (const OutputPart& p : parts) {
      if (p.slot < 0) {
        out += p.text;
      } else {
        RenderInto(Get(p.slot), slots_[static_cast<size_t>(p.slot)].def->type, &out);
      }
    }
    return out;
  }

 private:
  const std::vector<Slot>& slots_;
  const EvalInput& in_;
  std::vector<FieldValue>& values_;
  std::vector<uint32_t>& stamp_;
  std::vector<IpNet>& ips_;
  std::vector<uint8_t>& ip_valid_;
  std::vector<uint32_t>& ip_stamp_;
  uint32_t epoch_ = 0;
  int8_t* memo_ = nullptr;
  uint64_t memo_reused_ = 0;
};

}  // namespace

RuleSet::RuleSet() : impl_(std::make_unique<Impl>()) {}
RuleSet::~RuleSet() = default;
RuleSet::RuleSet(RuleSet&&) noexcept = default;
RuleSet& RuleSet::operator=(RuleSet&&) noexcept = default;

core::Result<RuleSet> RuleSet::LoadString(std::string_view yaml, std::string_view source) {
  RuleSet set;
  VIGIL_RETURN_IF_ERROR(set.impl_->LoadYaml(std::string(yaml), std::string(source)));
  VIGIL_RETURN_IF_ERROR(set.impl_->Compile());
  return set;
}

core::Result<RuleSet> RuleSet::LoadDocuments(
    const std::vector<std::pair<std::string, std::string>>& docs) {
  RuleSet set;
  if (docs.empty()) return core::InvalidArgument("no rules file given");
  for (const auto& [name, text] : docs) VIGIL_RETURN_IF_ERROR(set.impl_->LoadYaml(text, name));
  VIGIL_RETURN_IF_ERROR(set.impl_->Compile());
  return set;
}

core::Result<RuleSet> RuleSet::LoadFiles(const std::vector<std::string>& paths) {
  RuleSet set;
  if (paths.empty()) return core::InvalidArgument("no rules file given");
  for (const std::string& path : paths) {
    VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxRulesFileBytes));
    VIGIL_RETURN_IF_ERROR(set.impl_->LoadYaml(text, path));
  }
  VIGIL_RETURN_IF_ERROR(set.impl_->Compile());
  return set;
}

const std::vector<Rule>& RuleSet::rules() const { return impl_->rules; }
const std::vector<LoadWarning>& RuleSet::warnings() const { return impl_->warnings; }
size_t RuleSet::enabled_count() const { return impl_->compiled.size(); }

std::vector<Match> RuleSet::Evaluate(const EvalInput& in, ProcessMemo* memo) const {
  std::vector<Match> out;
  if (in.event == nullptr) return out;
  const core::Event& e = *in.event;
  thread_local Scratch scratch;
  Evaluator ev(impl_->slots, in, &scratch);
  if (memo != nullptr && impl_->memo_parts != 0) {
    if (memo->rules_id_ != impl_->id || !SameProcess(memo->proc_, e.proc)) {
      memo->rules_id_ = impl_->id;
      memo->proc_ = e.proc;
      memo->values_.assign(impl_->memo_parts, -1);
    }
    ev.UseMemo(memo->values_.data());
  }
  const bool memoised = ev.memo() != nullptr;
  for (const PlannedRule& p : impl_->PlanFor(e).rules) {
    if (ev.Eval(memoised ? *p.root : *p.plain)) {
      const CompiledRule& c = impl_->compiled[p.compiled];
      out.push_back({&impl_->rules[c.rule], ev.Output(c.output)});
    }
  }
  if (memo != nullptr) memo->reused_ += ev.memo_reused();
  return out;
}

std::vector<Match> RuleSet::EvaluateEveryRule(const EvalInput& in) const {
  std::vector<Match> out;
  if (in.event == nullptr) return out;
  Scratch scratch;
  Evaluator ev(impl_->slots, in, &scratch);
  for (const CompiledRule& c : impl_->compiled) {
    ev.Forget(&scratch);
    if (ev.Eval(c.root)) out.push_back({&impl_->rules[c.rule], ev.Output(c.output)});
  }
  return out;
}

size_t RuleSet::CandidateCount(std::string_view type) const {
  return impl_->plans[impl_->PlanIndex(type)].rules.size();
}

size_t RuleSet::MemoizedParts() const { return impl_->memo_parts; }

namespace {

void CollectSlots(const Node& n, std::vector<bool>* used) {
  if (n.kind == Node::Kind::kCheck) {
    if (n.slot >= 0) (*used)[static_cast<size_t>(n.slot)] = true;
    return;
  }
  for (const Node& c : n.children) CollectSlots(c, used);
}

}  // namespace

std::vector<FieldUse> RuleSet::UsedFields() const {
  std::vector<bool> used(impl_->slots.size(), false);
  for (const CompiledRule& c : impl_->compiled) {
    CollectSlots(c.root, &used);
    for (const OutputPart& p : c.output) {
      if (p.slot >= 0) used[static_cast<size_t>(p.slot)] = true;
    }
  }
  std::vector<FieldUse> out;
  for (size_t i = 0; i < used.size(); ++i) {
    if (used[i]) out.push_back({impl_->slots[i].def->name, impl_->slots[i].index});
  }
  return out;
}

}  // namespace vigil::policy
