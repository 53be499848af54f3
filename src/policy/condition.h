#pragma once

// The condition language of Falco rules, parsed into a syntax tree.
//
//   expr    := and ('or' and)*
//   and     := unary ('and' unary)*
//   unary   := 'not' unary | '(' expr ')' | check | MACRO
//   check   := FIELD ['[' ARG ']'] ( 'exists'
//                                  | CMP value
//                                  | ('in' | 'intersects' | 'pmatch') '(' [value (',' value)*] ')' )
//   CMP     := = == != < <= > >= contains icontains bcontains startswith bstartswith endswith
//              glob iglob regex
//   value   := 'quoted' | "quoted" | bare word (up to blank, comma or parenthesis)
//
// A field name holds a dot (proc.name); a name without one is a macro reference. Keywords are
// lower case. Bare words inside a value list may name a list; the rules loader expands them.
// Errors give the 1-based column and the reason; ParseCondition never throws.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::policy {

enum class CmpOp : uint8_t {
  kEq, kNe, kLt, kLe, kGt, kGe,
  kContains, kIContains, kBContains, kStartsWith, kBStartsWith, kEndsWith,
  kGlob, kIGlob, kRegex,
  kIn, kIntersects, kPmatch,  // take a value list
  kExists,                    // takes no value
};

std::string_view CmpOpName(CmpOp op);
// Operators that take a parenthesised value list.
bool TakesList(CmpOp op);

struct Value {
  std::string text;
  bool quoted = false;  // a quoted string is never a list name
};

struct Expr {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCheck, kMacro };
  Kind kind = Kind::kCheck;
  std::vector<std::unique_ptr<Expr>> children;  // and/or: two or more; not: one
  // kCheck
  std::string field;
  std::string arg;       // the text between [ and ], when has_arg
  bool has_arg = false;
  CmpOp op = CmpOp::kEq;
  std::vector<Value> values;
  // kMacro
  std::string macro;
  size_t column = 0;  // 1-based column of the check or macro in the condition
};
using ExprPtr = std::unique_ptr<Expr>;

// kInvalidArgument "column N: reason" for a syntax error.
core::Result<ExprPtr> ParseCondition(std::string_view text);

// Fields and macros named anywhere in the tree, in order of first appearance.
void CollectNames(const Expr& e, std::vector<std::string>* fields, std::vector<std::string>* macros);

}  // namespace vigil::policy
