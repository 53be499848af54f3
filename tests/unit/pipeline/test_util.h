#pragma once

// Helpers shared by the pipeline tests: a private temporary directory and small file utilities.

#include <string>
#include <vector>

namespace vigil::pipeline::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Whole file as bytes; "" when it cannot be read.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);
void AppendFile(const std::string& path, const std::string& bytes);
// Names (not paths) of the entries of `dir` ending in `suffix`, sorted.
std::vector<std::string> ListDir(const std::string& dir, const std::string& suffix = "");

}  // namespace vigil::pipeline::testing
