#include "policy/condition.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace vigil::policy {
namespace {

struct OpName {
  std::string_view name;
  CmpOp op;
};

// Word operators; symbolic ones are scanned separately.
constexpr std::array<OpName, 13> kWordOps = {{
    {"contains", CmpOp::kContains},
    {"icontains", CmpOp::kIContains},
    {"bcontains", CmpOp::kBContains},
    {"startswith", CmpOp::kStartsWith},
    {"bstartswith", CmpOp::kBStartsWith},
    {"endswith", CmpOp::kEndsWith},
    {"glob", CmpOp::kGlob},
    {"iglob", CmpOp::kIGlob},
    {"regex", CmpOp::kRegex},
    {"in", CmpOp::kIn},
    {"intersects", CmpOp::kIntersects},
    {"pmatch", CmpOp::kPmatch},
    {"exists", CmpOp::kExists},
}};

constexpr size_t kMaxDepth = 200;  // nesting of parentheses and 'not'

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}
bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  core::Result<ExprPtr> Parse() {
    auto e = Or(0);
    if (!e.has_value()) return e;
    SkipBlanks();
    if (pos_ < s_.size()) return Fail("unexpected \"" + std::string(Rest(12)) + "\"");
    return e;
  }

 private:
  core::Result<ExprPtr> Or(size_t depth) {
    auto first = And(depth);
    if (!first.has_value()) return first;
    ExprPtr node = std::move(first).value();
    while (Keyword("or")) {
      auto next = And(depth);
      if (!next.has_value()) return next;
      node = Join(Expr::Kind::kOr, std::move(node), std::move(next).value());
    }
    return node;
  }

  core::Result<ExprPtr> And(size_t depth) {
    auto first = Unary(depth);
    if (!first.has_value()) return first;
    ExprPtr node = std::move(first).value();
    while (Keyword("and")) {
      auto next = Unary(depth);
      if (!next.has_value()) return next;
      node = Join(Expr::Kind::kAnd, std::move(node), std::move(next).value());
    }
    return node;
  }

  static ExprPtr Join(Expr::Kind kind, ExprPtr left, ExprPtr right) {
    if (left->kind == kind) {
      left->children.push_back(std::move(right));
      return left;
    }
    auto node = std::make_unique<Expr>();
    node->kind = kind;
    node->column = left->column;
    node->children.push_back(std::move(left));
    node->children.push_back(std::move(right));
    return node;
  }

  core::Result<ExprPtr> Unary(size_t depth) {
    if (depth > kMaxDepth) return Fail("nested more than " + std::to_string(kMaxDepth) + " deep");
    SkipBlanks();
    const size_t column = pos_ + 1;
    if (Keyword("not")) {
      auto inner = Unary(depth + 1);
      if (!inner.has_value()) return inner;
      auto node = std::make_unique<Expr>();
      node->kind = Expr::Kind::kNot;
      node->column = column;
      node->children.push_back(std::move(inner).value());
      return node;
    }
    if (Peek() == '(') {
      ++pos_;
      auto inner = Or(depth + 1);
      if (!inner.has_value()) return inner;
      SkipBlanks();
      if (Peek() != ')') return Fail(AtEnd() ? "missing ')'" : "expected ')'");
      ++pos_;
      return inner;
    }
    if (AtEnd()) return Fail("expected a check, a macro or '('");
    if (!IsNameStart(Peek())) return Fail("unexpected \"" + std::string(Rest(12)) + "\"");
    const std::string name = ReadName();
    if (name == "and" || name == "or") return Fail("\"" + name + "\" needs an operand before it");
    SkipBlanks();
    const bool has_arg = Peek() == '[';
    if (name.find('.') == std::string::npos && !has_arg && !AtOperator()) {
      auto node = std::make_unique<Expr>();
      node->kind = Expr::Kind::kMacro;
      node->macro = name;
      node->column = column;
      return node;
    }
    return Check(name, column);
  }

  core::Result<ExprPtr> Check(const std::string& field, size_t column) {
    auto node = std::make_unique<Expr>();
    node->kind = Expr::Kind::kCheck;
    node->field = field;
    node->column = column;
    if (Peek() == '[') {
      const size_t close = s_.find(']', pos_);
      if (close == std::string_view::npos) return Fail("missing ']' after field \"" + field + "\"");
      node->arg = std::string(s_.substr(pos_ + 1, close - pos_ - 1));
      node->has_arg = true;
      pos_ = close + 1;
    }
    SkipBlanks();
    auto op = ReadOperator();
    if (!op.has_value()) return op.error();
    node->op = *op;
    if (node->op == CmpOp::kExists) return node;
    SkipBlanks();
    if (TakesList(node->op)) {
      if (Peek() != '(') return Fail("\"" + std::string(CmpOpName(node->op)) + "\" needs a '(' list");
      ++pos_;
      SkipBlanks();
      if (Peek() == ')') {
        ++pos_;
        return node;
      }
      while (true) {
        auto v = ReadValue();
        if (!v.has_value()) return v.error();
        node->values.push_back(std::move(v).value());
        SkipBlanks();
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        if (Peek() == ')') {
          ++pos_;
          break;
        }
        return Fail(AtEnd() ? "missing ')' after the value list" : "expected ',' or ')'");
      }
      return node;
    }
    auto v = ReadValue();
    if (!v.has_value()) return v.error();
    node->values.push_back(std::move(v).value());
    return node;
  }

  core::Result<CmpOp> ReadOperator() {
    const char c = Peek();
    auto two = [&](char next) { return pos_ + 1 < s_.size() && s_[pos_ + 1] == next; };
    if (c == '=') {
      pos_ += two('=') ? 2 : 1;
      return CmpOp::kEq;
    }
    if (c == '!' && two('=')) {
      pos_ += 2;
      return CmpOp::kNe;
    }
    if (c == '<' || c == '>') {
      const bool eq = two('=');
      pos_ += eq ? 2 : 1;
      if (c == '<') return eq ? CmpOp::kLe : CmpOp::kLt;
      return eq ? CmpOp::kGe : CmpOp::kGt;
    }
    if (IsNameStart(c)) {
      const size_t start = pos_;
      const std::string word = ReadName();
      for (const OpName& o : kWordOps) {
        if (o.name == word) return o.op;
      }
      pos_ = start;
      return Fail("unknown operator \"" + word + "\"");
    }
    return Fail(AtEnd() ? "missing operator at the end" : "expected an operator");
  }

  // True when an operator follows (used to tell a dotless field from a macro).
  bool AtOperator() {
    const char c = Peek();
    if (c == '=' || c == '<' || c == '>' || (c == '!' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '=')) {
      return true;
    }
    if (!IsNameStart(c)) return false;
    size_t end = pos_;
    while (end < s_.size() && IsNameChar(s_[end])) ++end;
    const std::string_view word = s_.substr(pos_, end - pos_);
    return std::any_of(kWordOps.begin(), kWordOps.end(),
                       [&](const OpName& o) { return o.name == word; });
  }

  core::Result<Value> ReadValue() {
    SkipBlanks();
    if (AtEnd()) return Fail("missing value at the end");
    const char c = Peek();
    if (c == '"' || c == '\'') {
      std::string out;
      ++pos_;
      while (pos_ < s_.size() && s_[pos_] != c) {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) {
          const char e = s_[pos_ + 1];
          out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
          pos_ += 2;
          continue;
        }
        out.push_back(s_[pos_++]);
      }
      if (pos_ >= s_.size()) return Fail("unterminated string");
      ++pos_;
      return Value{std::move(out), true};
    }
    const size_t start = pos_;
    while (pos_ < s_.size() && !IsBlank(s_[pos_]) && s_[pos_] != ',' && s_[pos_] != '(' &&
           s_[pos_] != ')') {
      ++pos_;
    }
    if (pos_ == start) return Fail("expected a value");
    return Value{std::string(s_.substr(start, pos_ - start)), false};
  }

  bool Keyword(std::string_view word) {
    SkipBlanks();
    if (s_.substr(pos_, word.size()) != word) return false;
    const size_t end = pos_ + word.size();
    if (end < s_.size() && IsNameChar(s_[end])) return false;
    pos_ = end;
    return true;
  }

  std::string ReadName() {
    const size_t start = pos_;
    while (pos_ < s_.size() && IsNameChar(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  void SkipBlanks() {
    while (pos_ < s_.size() && IsBlank(s_[pos_])) ++pos_;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool AtEnd() const { return pos_ >= s_.size(); }
  std::string_view Rest(size_t n) const { return s_.substr(pos_, n); }

  core::Status Fail(const std::string& why) const {
    return core::InvalidArgument("column " + std::to_string(std::min(pos_, s_.size()) + 1) + ": " +
                                 why);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

void Collect(const Expr& e, std::vector<std::string>* fields, std::vector<std::string>* macros) {
  auto add = [](std::vector<std::string>* to, const std::string& name) {
    if (to != nullptr && std::find(to->begin(), to->end(), name) == to->end()) to->push_back(name);
  };
  switch (e.kind) {
    case Expr::Kind::kCheck:
      add(fields, e.field);
      return;
    case Expr::Kind::kMacro:
      add(macros, e.macro);
      return;
    default:
      for (const ExprPtr& c : e.children) Collect(*c, fields, macros);
  }
}

}  // namespace

std::string_view CmpOpName(CmpOp op) {
  switch (op) {
    case CmpOp::kEq: return "=";
    case CmpOp::kNe: return "!=";
    case CmpOp::kLt: return "<";
    case CmpOp::kLe: return "<=";
    case CmpOp::kGt: return ">";
    case CmpOp::kGe: return ">=";
    default:
      for (const OpName& o : kWordOps) {
        if (o.op == op) return o.name;
      }
  }
  return "?";
}

bool TakesList(CmpOp op) {
  return op == CmpOp::kIn || op == CmpOp::kIntersects || op == CmpOp::kPmatch;
}

core::Result<ExprPtr> ParseCondition(std::string_view text) { return Parser(text).Parse(); }

void CollectNames(const Expr& e, std::vector<std::string>* fields,
                  std::vector<std::string>* macros) {
  Collect(e, fields, macros);
}

}  // namespace vigil::policy
