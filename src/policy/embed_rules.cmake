# Writes the rules file IN as a C++ raw string literal to OUT (used by default_rules.cc).
file(READ "${IN}" content)
file(WRITE "${OUT}" "R\"vigil_rules(${content})vigil_rules\"\n")
