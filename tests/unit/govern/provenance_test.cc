#include "govern/provenance.h"

#include <gtest/gtest.h>

namespace vigil::govern {
namespace {

using nlohmann::json;

ModelArtifact Artifact() {
  ModelArtifact a;
  a.file_name = "adfa.vgm";
  a.sha256 = std::string(64, 'b');
  a.size = 1234;
  a.header = {{"family", "syscall-ngram"},
              {"name", "adfa"},
              {"version", "3"},
              {"format_version", 1},
              {"code_version", "vigil 0.1.0"},
              {"created_unix", 1700000000},
              {"params", {{"order", 6}, {"target_fpr", 0.05}}},
              {"training", {{"dataset", "adfa-ld"}, {"digest", "sha256:" + std::string(64, 'c')},
                            {"traces", 833}}},
              {"calibration", {{"*", {{"threshold", 4.5}, {"achieved_fpr", 0.049}}},
                               {"ls", {{"threshold", 2.0}, {"achieved_fpr", 0.01}}}}},
              {"metrics", {{"auc", 0.849}, {"detection", {{"fpr_1", 0.135}}}}}};
  return a;
}

TEST(ProvenanceTest, StatementCarriesSubjectDataParamsCodeAndMetrics) {
  auto doc = BuildProvenance(Artifact(), "0.1.0", 1800000000, "adfa.vgm");
  ASSERT_TRUE(doc.has_value()) << doc.error().message();
  const json& d = *doc;
  EXPECT_EQ(d["_type"], "https://in-toto.io/Statement/v1");
  EXPECT_EQ(d["predicateType"], "https://slsa.dev/provenance/v1");
  EXPECT_EQ(d["subject"][0]["name"], "adfa.vgm");
  EXPECT_EQ(d["subject"][0]["digest"]["sha256"], std::string(64, 'b'));
  const json& build = d["predicate"]["buildDefinition"];
  EXPECT_EQ(build["externalParameters"]["params"]["order"], 6);
  EXPECT_EQ(build["resolvedDependencies"][0]["digest"]["sha256"], std::string(64, 'c'));
  EXPECT_EQ(build["resolvedDependencies"][0]["name"], "training-data:adfa-ld");
  EXPECT_EQ(build["internalParameters"]["code_version"], "vigil 0.1.0");
  const json& run = d["predicate"]["runDetails"];
  EXPECT_EQ(run["builder"]["version"]["vigil"], "vigil 0.1.0");
  EXPECT_EQ(run["metadata"]["finishedOn"], "2023-11-14T22:13:20Z");
  const json& metrics = run["byproducts"][0]["annotations"];
  EXPECT_DOUBLE_EQ(metrics["auc"].get<double>(), 0.849);
  EXPECT_DOUBLE_EQ(metrics["detection.fpr_1"].get<double>(), 0.135);
  EXPECT_DOUBLE_EQ(metrics["calibration.global.achieved_fpr"].get<double>(), 0.049);
}

TEST(ProvenanceTest, RefusesMalformedHeaderFields) {
  ModelArtifact a = Artifact();
  a.header["training"]["digest"] = "not-a-digest";
  auto doc = BuildProvenance(a, "0.1.0", 0, "m.vgm");
  ASSERT_FALSE(doc.has_value());
  EXPECT_EQ(doc.error().message(),
            "m.vgm: header \"training.digest\" is not [sha256:] and 64 lower-case hex digits");
  a = Artifact();
  a.header["metrics"] = 3;
  EXPECT_EQ(ModelMetrics(a.header, "m.vgm").error().message(),
            "m.vgm: header \"metrics\" is not an object");
}

TEST(ProvenanceTest, ModelBomHasModelCardAndDataset) {
  auto doc = BuildModelBom(Artifact(), "0.1.0", 1800000000, RandomUuid(), "adfa.vgm");
  ASSERT_TRUE(doc.has_value()) << doc.error().message();
  const json& d = *doc;
  EXPECT_EQ(d["specVersion"], "1.5");
  const json& model = d["metadata"]["component"];
  EXPECT_EQ(model["type"], "machine-learning-model");
  EXPECT_EQ(model["hashes"][0]["content"], std::string(64, 'b'));
  const json& card = model["modelCard"];
  EXPECT_EQ(card["modelParameters"]["architectureFamily"], "syscall-ngram");
  const std::string ref = card["modelParameters"]["datasets"][0]["ref"];
  ASSERT_EQ(d["components"].size(), 1u);
  EXPECT_EQ(d["components"][0]["bom-ref"], ref);
  EXPECT_EQ(d["components"][0]["hashes"][0]["content"], std::string(64, 'c'));
  bool saw_auc = false;
  for (const json& m : card["quantitativeAnalysis"]["performanceMetrics"]) {
    if (m["type"] == "auc") saw_auc = m["value"] == "0.849";
  }
  EXPECT_TRUE(saw_auc);
}

TEST(SbomTest, PurlEncodesTheVersion) {
  DebianPackage p{"libssl3", "1:3.0.11-1~deb12u2", "amd64", {}};
  EXPECT_EQ(DebianPurl(p), "pkg:deb/debian/libssl3@1%3A3.0.11-1~deb12u2?arch=amd64");
}

TEST(SbomTest, ParsesDpkgOutputAndRefusesGarbage) {
  auto s = ParseDpkgSearch(
      "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n"
      "diversion by foo from: /usr/bin/x\n"
      "libfoo1, libfoo2: /usr/lib/libfoo.so.1\n");
  ASSERT_TRUE(s.has_value()) << s.error().message();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].first, "/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_EQ((*s)[0].second, "libc6:amd64");
  EXPECT_EQ((*s)[1].second, "libfoo1");
  EXPECT_FALSE(ParseDpkgSearch("no separator here\n").has_value());
  EXPECT_FALSE(ParseDpkgSearch("Bad_Name: /x\n").has_value());

  auto q = ParseDpkgQuery("libc6\tamd64\t2.36-9+deb12u4\n");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ((*q)[0].version, "2.36-9+deb12u4");
  auto bad = ParseDpkgQuery("libc6\tamd64\n");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "dpkg-query output line 1: expected three tab-separated fields");
  EXPECT_FALSE(ParseDpkgQuery("libc6\tamd64\t2.36 9\n").has_value());
}

TEST(SbomTest, ResolvesThisProcessLibrariesToDebianPackages) {
  const auto libs = LoadedSharedObjects();
  ASSERT_FALSE(libs.empty());
  BinaryInfo info;
  const core::Status st = ResolveDebianPackages(libs, &info);
  if (st.code() == core::StatusCode::kFailedPrecondition) GTEST_SKIP() << st.message();
  ASSERT_TRUE(st.ok()) << st.message();
  bool libc = false;
  for (const DebianPackage& p : info.packages) libc |= p.name == "libc6";
  EXPECT_TRUE(libc) << "libc.so.6 should resolve to libc6";
  EXPECT_TRUE(info.unpackaged.empty()) << info.unpackaged.front();
}

}  // namespace
}  // namespace vigil::govern
