#include "policy/condition.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil::policy {
namespace {

// A compact rendering of a tree, for comparing shapes.
std::string Show(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      std::string s = e.kind == Expr::Kind::kAnd ? "(and" : "(or";
      for (const auto& c : e.children) s += " " + Show(*c);
      return s + ")";
    }
    case Expr::Kind::kNot:
      return "(not " + Show(*e.children[0]) + ")";
    case Expr::Kind::kMacro:
      return "@" + e.macro;
    case Expr::Kind::kCheck: {
      std::string s = "[" + e.field + (e.has_arg ? "[" + e.arg + "]" : "") + " " +
                      std::string(CmpOpName(e.op));
      for (const Value& v : e.values) s += " " + std::string(v.quoted ? "'" : "") + v.text;
      return s + "]";
    }
  }
  return "?";
}

std::string ParseShow(std::string_view text) {
  auto e = ParseCondition(text);
  if (!e.has_value()) return "error: " + e.error().message();
  return Show(**e);
}

TEST(ConditionTest, PrecedenceIsNotThenAndThenOr) {
  EXPECT_EQ(ParseShow("a or b and not c"), "(or @a (and @b (not @c)))");
  EXPECT_EQ(ParseShow("(a or b) and c"), "(and (or @a @b) @c)");
  EXPECT_EQ(ParseShow("a and b and c"), "(and @a @b @c)");
  EXPECT_EQ(ParseShow("not not a"), "(not (not @a))");
}

TEST(ConditionTest, ChecksWithEveryOperatorShape) {
  EXPECT_EQ(ParseShow("evt.type=open"), "[evt.type = open]");
  EXPECT_EQ(ParseShow("evt.type == open"), "[evt.type = open]");
  EXPECT_EQ(ParseShow("fd.num>=0"), "[fd.num >= 0]");
  EXPECT_EQ(ParseShow("user.uid != 0"), "[user.uid != 0]");
  EXPECT_EQ(ParseShow("evt.dir=<"), "[evt.dir = <]");
  EXPECT_EQ(ParseShow("proc.name in (sshd, 'sudo', \"su do\")"), "[proc.name in sshd 'sudo 'su do]");
  EXPECT_EQ(ParseShow("proc.name in ()"), "[proc.name in]");
  EXPECT_EQ(ParseShow("proc.pname exists"), "[proc.pname exists]");
  EXPECT_EQ(ParseShow("proc.aname[2] startswith run"), "[proc.aname[2] startswith run]");
  EXPECT_EQ(ParseShow("fd.name glob '/home/*/.ssh/*'"), "[fd.name glob '/home/*/.ssh/*]");
  EXPECT_EQ(ParseShow("fd.name pmatch (/etc, /usr/bin)"), "[fd.name pmatch /etc /usr/bin]");
  EXPECT_EQ(ParseShow("proc.pname in (runc:[0:PARENT], exe)"), "[proc.pname in runc:[0:PARENT] exe]");
  EXPECT_EQ(ParseShow("proc.cmdline icontains \"-jar \\\"x\\\"\""), "[proc.cmdline icontains '-jar \"x\"]");
}

TEST(ConditionTest, MacroVersusDotlessField) {
  EXPECT_EQ(ParseShow("spawned_process and proc.name=sh"), "(and @spawned_process [proc.name = sh])");
  EXPECT_EQ(ParseShow("(open_write)"), "@open_write");
}

TEST(ConditionTest, ErrorsNameTheColumn) {
  EXPECT_EQ(ParseShow("proc.name ="), "error: column 12: missing value at the end");
  EXPECT_EQ(ParseShow("proc.name in (a, b"), "error: column 19: missing ')' after the value list");
  EXPECT_EQ(ParseShow("(a and b"), "error: column 9: missing ')'");
  EXPECT_EQ(ParseShow("proc.name frob x"), "error: column 11: unknown operator \"frob\"");
  EXPECT_EQ(ParseShow("a and"), "error: column 6: expected a check, a macro or '('");
  EXPECT_EQ(ParseShow("a b"), "error: column 3: unexpected \"b\"");
  EXPECT_EQ(ParseShow("proc.name = 'open"), "error: column 18: unterminated string");
  EXPECT_EQ(ParseShow("proc.name in sshd"), "error: column 14: \"in\" needs a '(' list");
  EXPECT_EQ(ParseShow(""), "error: column 1: expected a check, a macro or '('");
}

TEST(ConditionTest, DeepNestingIsRefusedNotACrash) {
  std::string deep(10000, '(');
  deep += "a";
  EXPECT_NE(ParseShow(deep).find("nested more than"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "not ";
  EXPECT_NE(ParseShow(nots + "a").find("nested more than"), std::string::npos);
}

}  // namespace
}  // namespace vigil::policy
