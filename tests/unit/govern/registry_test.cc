#include "govern/registry.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "../sensor/temp_dir.h"
#include "govern/internal/files.h"

namespace vigil::govern {
namespace {

using sensor::testing::TempDir;

TEST(RegistryTest, PushListResolveRead) {
  TempDir tmp;
  Registry reg(tmp.path().string() + "/reg");
  const nlohmann::json id = {{"family", "syscall-ngram"}, {"name", "m"}, {"version", "1"}};
  auto a = reg.Push("model-a", "a.vgm", "model", id, "", 100);
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(a->digest, internal::Sha256Hex("model-a"));
  auto b = reg.Push("model-b", "b.vgm", "model", id, "sig text", 200);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->has_signature);

  auto all = reg.List();
  ASSERT_TRUE(all.has_value()) << all.error().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "b.vgm");  // newest first
  EXPECT_EQ((*all)[1].model, id);

  auto r = reg.Resolve("sha256:" + a->digest);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->name, "a.vgm");
  r = reg.Resolve(a->digest.substr(0, 8));
  ASSERT_TRUE(r.has_value());
  auto bytes = reg.ReadBlob(*r);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(*bytes, "model-a");
  auto sig = reg.ReadSignature(*b);
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(*sig, "sig text");

  // Pushing the same bytes again keeps the signature it had.
  auto again = reg.Push("model-b", "b2.vgm", "model", id, "", 300);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->has_signature);
}

TEST(RegistryTest, RefusesUnknownShortAndDamaged) {
  TempDir tmp;
  const std::string dir = tmp.path().string() + "/reg";
  Registry reg(dir);
  auto a = reg.Push("model-a", "a.vgm", "model", nullptr, "", 1);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(reg.Resolve("abc").error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Resolve("ABCDEF0123").error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Resolve(std::string(64, '0')).error().code(), core::StatusCode::kNotFound);

  std::ofstream(dir + "/blobs/sha256/" + a->digest, std::ios::binary) << "model-A";
  auto bytes = reg.ReadBlob(*a);
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().code(), core::StatusCode::kDataLoss);
  EXPECT_NE(bytes.error().message().find("registry entry is damaged"), std::string::npos);

  const std::string manifest = dir + "/manifests/" + a->digest + ".json";
  std::ofstream(manifest) << "{\"schema\": 1}";
  auto list = reg.List();
  ASSERT_FALSE(list.has_value());
  EXPECT_NE(list.error().message().find(manifest + ": \"schema\" is not a string"),
            std::string::npos) << list.error().message();
}

TEST(RegistryTest, ManifestParserNamesTheFault) {
  RegistryEntry e;
  e.digest = std::string(64, 'a');
  e.size = 3;
  e.name = "m.vgm";
  e.kind = "model";
  e.pushed_unix = 5;
  const std::string good = EncodeManifest(e);
  ASSERT_TRUE(ParseManifest(good, "m.json").has_value());
  auto bad = [](nlohmann::json j) { return ParseManifest(j.dump(), "m.json"); };
  nlohmann::json j = nlohmann::json::parse(good);
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* error;
  } cases[] = {
      {"digest", "sha256:xyz", "m.json: \"digest\" is not \"sha256:\" and 64 lower-case hex"},
      {"size", -1, "m.json: \"size\" is missing or not an unsigned integer"},
      {"name", "../etc/passwd", "m.json: \"name\" must be a plain file name"},
      {"kind", "binary", "m.json: \"kind\" is \"binary\", not \"model\" or \"policy\""},
      {"signed", "yes", "m.json: \"signed\" is missing or not true/false"},
      {"extra", 1, "m.json: unknown key \"extra\""},
      {"model", {{"family", "x"}}, "m.json: model: missing \"name\""},
  };
  for (const Case& c : cases) {
    nlohmann::json k = j;
    k[c.key] = c.value;
    auto r = bad(k);
    ASSERT_FALSE(r.has_value()) << c.key;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << "got: " << r.error().message();
  }
  EXPECT_NE(ParseManifest("{", "m.json").error().message().find("m.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(ParseManifest("[]", "m.json").error().message().find("not a JSON object"),
            std::string::npos);
}

}  // namespace
}  // namespace vigil::govern
