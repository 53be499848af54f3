#include "govern/attest.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

#include "../sensor/temp_dir.h"
#include "govern/measure.h"
#include "govern/tpm.h"
#include "swtpm.h"

namespace vigil::govern {
namespace {

using sensor::testing::TempDir;
using testing::Swtpm;

AttestEvent Event(const std::string& kind, const std::string& name, const std::string& content) {
  AttestEvent e;
  e.kind = kind;
  e.name = name;
  e.digest = Sha256Of(content);
  return e;
}

TEST(AttestFormatTest, EventListRoundTripsAndReplays) {
  std::vector<AttestEvent> events = {Event("agent-start", "/usr/bin/vigil", "bin"),
                                     Event("model", "/m.vgm", "model")};
  auto parsed = ParseEventList(EncodeEventList(events), "events.json");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].name, "/m.vgm");
  EXPECT_EQ((*parsed)[1].digest, Sha256Of("model"));
  const auto pcrs = ReplayEvents(*parsed);
  ASSERT_EQ(pcrs.count(23), 1u);
  EXPECT_EQ(pcrs.at(23), ExtendDigest(ExtendDigest(Sha256Digest{}, Sha256Of("bin")),
                                      Sha256Of("model")));
}

TEST(AttestFormatTest, EventListErrorsNameThePlace) {
  auto err = [](const std::string& text) {
    auto r = ParseEventList(text, "ev.json");
    return r.has_value() ? std::string("ok") : r.error().message();
  };
  const std::string head = R"({"schema":"vigil.attest.events/v1","bank":"sha256","events":)";
  EXPECT_EQ(err("{"), "ev.json: not valid JSON");
  EXPECT_EQ(err(R"({"schema":"x","bank":"sha256","events":[]})"),
            "ev.json: schema \"x\" is not \"vigil.attest.events/v1\"");
  EXPECT_EQ(err(head + R"([{"pcr":24,"digest":"00","kind":"model","name":"a"}]})"),
            "ev.json: events[0].pcr: a PCR index must be an integer 0..23");
  EXPECT_EQ(err(head + R"([{"pcr":23,"digest":"00","kind":"model","name":"a"}]})"),
            "ev.json: events[0]: \"digest\" is not 64 hex digits (SHA-256)");
  const std::string d(64, 'a');
  EXPECT_EQ(err(head + R"([{"pcr":23,"digest":")" + d + R"(","kind":"Model","name":"a"}]})"),
            "ev.json: events[0]: \"kind\" must be 1-32 of a-z, 0-9 and '-'");
  EXPECT_EQ(err(head + R"([{"pcr":23,"digest":")" + d + R"(","kind":"m","name":"a","x":1}]})"),
            "ev.json: events[0]: unknown key \"x\"");
  EXPECT_EQ(err(head + R"([{"pcr":23,"digest":")" + d + R"(","kind":"m","name":"a\nb"}]})"),
            "ev.json: events[0]: \"name\" must be 1-4096 bytes without control characters");
}

TEST(AttestFormatTest, AllowlistReadsSha256sumOutput) {
  const std::string a = HexOf(Sha256Of("a")), b = HexOf(Sha256Of("b"));
  auto list = ParseAllowlist("# models\n" + a + "  model.vgm\n\nsha256:" + b + "\n", "allow.txt");
  ASSERT_TRUE(list.has_value()) << list.error().message();
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ(list->count(Sha256Of("b")), 1u);
  auto bad = ParseAllowlist(a + "\nnot-a-digest\n", "allow.txt");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(),
            "allow.txt:2: expected a SHA-256 digest (64 hex digits), optionally followed by a "
            "space and a name");
  EXPECT_FALSE(ParseAllowlist(a + "x\n", "allow.txt").has_value());
}

TEST(AttestFormatTest, QuoteDocumentRefusesInconsistentPcrs) {
  QuoteDocument q;
  q.nonce = "12345678";
  q.pcrs = {23};
  q.pcr_values[23] = Sha256Of("x");
  q.attest = "a";
  q.signature = "s";
  q.ak_public_pem = "pem";
  auto back = ParseQuoteDocument(EncodeQuoteDocument(q), "q.json");
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->pcr_values.at(23), Sha256Of("x"));
  std::string text = EncodeQuoteDocument(q);
  text.replace(text.find("\"23\":"), 5, "\"16\":");
  auto bad = ParseQuoteDocument(text, "q.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "q.json: pcr_values: \"16\" is not one of \"pcrs\"");
}

// Everything below runs against a private swtpm.
class AttestTpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!swtpm_.ok()) GTEST_SKIP() << swtpm_.why();
    MeasureOptions o;
    o.tcti = swtpm_.tcti();
    o.events_path = tmp_.path().string() + "/attest/events.json";
    auto m = Measurer::Open(o);
    ASSERT_TRUE(m.has_value()) << m.error().message();
    measurer_ = std::move(m).value();
    ASSERT_TRUE(measurer_->Restart(Event("agent-start", "/usr/bin/vigil", "binary")).ok());
    ASSERT_TRUE(measurer_->Measure(Event("model", "/state/models/baseline.vgm", "model")).ok());
    ASSERT_TRUE(measurer_->Measure(Event("policy", "/etc/vigil/rules.yaml", "policy")).ok());
  }

  QuoteDocument Quote(const std::string& nonce) {
    auto q = measurer_->Quote({}, nonce);
    EXPECT_TRUE(q.has_value()) << q.error().message();
    return q.has_value() ? *q : QuoteDocument{};
  }

  QuoteCheck Check(const QuoteDocument& q, const QuoteCheckOptions& o) {
    auto c = VerifyQuote(q, o);
    EXPECT_TRUE(c.has_value()) << c.error().message();
    return c.has_value() ? *c : QuoteCheck{};
  }

  Swtpm swtpm_;
  TempDir tmp_;
  std::unique_ptr<Measurer> measurer_;
  const std::string nonce_ = "0123456789abcdef";
};

TEST_F(AttestTpmTest, QuoteVerifiesAndReplaysToThePcr) {
  const QuoteDocument q = Quote(nonce_);
  ASSERT_EQ(q.events.size(), 3u);
  EXPECT_EQ(q.pcrs, std::vector<uint32_t>{23});
  auto pcr = measurer_->tpm().ReadPcr(23);
  ASSERT_TRUE(pcr.has_value());
  EXPECT_EQ(ReplayEvents(q.events).at(23), *pcr);
  QuoteCheckOptions o;
  o.nonce = nonce_;
  o.allowed = std::set<Sha256Digest>{Sha256Of("binary"), Sha256Of("model"), Sha256Of("policy")};
  o.expected_ak_pem = q.ak_public_pem;
  const QuoteCheck c = Check(q, o);
  EXPECT_TRUE(c.ok()) << c.detail;
  // The document survives its encoding.
  auto back = ParseQuoteDocument(EncodeQuoteDocument(q), "q.json");
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_TRUE(Check(*back, o).ok());
  // The same TPM signs with the same attestation key every time.
  EXPECT_EQ(Quote("aaaaaaaaaaaaaaaa").ak_public_pem, q.ak_public_pem);
}

TEST_F(AttestTpmTest, WrongNonceIsNamed) {
  QuoteCheckOptions o;
  o.nonce = "another nonce!!";
  const QuoteCheck c = Check(Quote(nonce_), o);
  EXPECT_EQ(c.failure, QuoteFailure::kNonceMismatch);
  EXPECT_NE(c.detail.find(HexOf(std::string_view(nonce_))), std::string::npos) << c.detail;
}

TEST_F(AttestTpmTest, AlteredOrShortenedEventListDoesNotReplay) {
  QuoteCheckOptions o;
  o.nonce = nonce_;
  QuoteDocument q = Quote(nonce_);
  q.events[1].digest = Sha256Of("another model");
  QuoteCheck c = Check(q, o);
  EXPECT_EQ(c.failure, QuoteFailure::kReplayMismatch);
  EXPECT_NE(c.detail.find("PCR 23"), std::string::npos) << c.detail;
  q = Quote(nonce_);
  q.events.pop_back();
  EXPECT_EQ(Check(q, o).failure, QuoteFailure::kReplayMismatch);
  q = Quote(nonce_);
  std::swap(q.events[1], q.events[2]);  // order matters
  EXPECT_EQ(Check(q, o).failure, QuoteFailure::kReplayMismatch);
}

TEST_F(AttestTpmTest, DisallowedDigestNamesTheEvent) {
  QuoteCheckOptions o;
  o.nonce = nonce_;
  o.allowed = std::set<Sha256Digest>{Sha256Of("binary"), Sha256Of("model")};
  const QuoteCheck c = Check(Quote(nonce_), o);
  EXPECT_EQ(c.failure, QuoteFailure::kDisallowedDigest);
  EXPECT_NE(c.detail.find("event 2 (policy /etc/vigil/rules.yaml"), std::string::npos) << c.detail;
}

TEST_F(AttestTpmTest, TamperedQuoteSignatureOrValuesAreCaught) {
  QuoteCheckOptions o;
  o.nonce = nonce_;
  QuoteDocument q = Quote(nonce_);
  q.attest[q.attest.size() - 5] ^= 1;
  EXPECT_EQ(Check(q, o).failure, QuoteFailure::kBadSignature);
  q = Quote(nonce_);
  q.signature[q.signature.size() - 3] ^= 1;
  EXPECT_EQ(Check(q, o).failure, QuoteFailure::kBadSignature);
  q = Quote(nonce_);
  q.pcr_values[23] = Sha256Of("forged");
  EXPECT_EQ(Check(q, o).failure, QuoteFailure::kPcrMismatch);
}

TEST_F(AttestTpmTest, AnotherAttestationKeyIsUnknown) {
  EVP_PKEY* other = EVP_EC_gen("P-256");
  ASSERT_NE(other, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, other), 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  QuoteCheckOptions o;
  o.nonce = nonce_;
  o.expected_ak_pem.assign(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(other);
  EXPECT_EQ(Check(Quote(nonce_), o).failure, QuoteFailure::kUnknownKey);
}

TEST_F(AttestTpmTest, LocalAttestationAndRestart) {
  auto c = AttestLocally(*measurer_, {Sha256Of("binary"), Sha256Of("model"), Sha256Of("policy")});
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_TRUE(c->ok()) << c->detail;
  c = AttestLocally(*measurer_, {Sha256Of("binary")});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->failure, QuoteFailure::kDisallowedDigest);
  // A restart resets the PCR and the list.
  ASSERT_TRUE(measurer_->Restart(Event("agent-start", "/usr/bin/vigil", "binary")).ok());
  auto events = measurer_->Events();
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(events->size(), 1u);
  auto pcr = measurer_->tpm().ReadPcr(23);
  ASSERT_TRUE(pcr.has_value());
  EXPECT_EQ(*pcr, ExtendDigest(Sha256Digest{}, Sha256Of("binary")));
}

TEST(AttestTpmErrorsTest, NoTpmConfiguredOrUnreachable) {
  auto none = Tpm::Open("");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), core::StatusCode::kInvalidArgument);
  MeasureOptions o;
  o.tcti = "swtpm:host=127.0.0.1,port=1";
  o.events_path = "/tmp/unused-events.json";
  auto down = Measurer::Open(o);
  ASSERT_FALSE(down.has_value());
  EXPECT_NE(down.error().message().find("swtpm:host=127.0.0.1,port=1"), std::string::npos)
      << down.error().message();
  o.pcr = 7;
  EXPECT_EQ(Measurer::Open(o).error().code(), core::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil::govern
