// libFuzzer target for the inputs of credential activation (govern/credential.h): EK
// certificates (DER as a TPM's NV index holds them, or PEM), EK CA bundles, AK public areas
// (TPM2B_PUBLIC), credential challenges as they cross the wire, quote documents with an EK
// certificate checked against a bundle, the hub's activation request body, certificate
// revocation lists, and a challenge's EK kind (from its encrypted secret). The first byte picks
// the parser. Accepted values must be consistent (a certificate re-encodes to the same DER,
// an AK's name is 34 bytes); errors must carry a message; nothing may crash, hang or throw.
// Seeds: tests/fuzz/corpus/credential/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "govern/attest.h"
#include "govern/credential.h"
#include "hub/fleet_requests.h"

namespace {

template <typename T>
bool Failed(const vigil::core::Result<T>& r) {
  if (!r.has_value() && r.error().message().empty()) __builtin_trap();
  return !r.has_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vigil::govern;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      auto ek = ParseEkCertificate(input, "ek.der");
      if (Failed(ek)) break;
      const size_t coordinate = ek->kind == EkKind::kEccP384 ? 48 : 32;
      const bool shape = ek->kind == EkKind::kRsa2048
                             ? ek->modulus.size() == 256 && ek->ecc_x.empty()
                             : ek->modulus.empty() && ek->ecc_x.size() == coordinate &&
                                   ek->ecc_y.size() == coordinate;
      if (!shape || ek->sha256.size() != 64) __builtin_trap();
      auto again = ParseEkCertificate(EkCertificatePem(*ek), "ek.pem");
      if (!again.has_value() || again->der != ek->der) __builtin_trap();
      // A certificate is its own bundle: the check ends (trusted or not) without an error.
      if (Failed(VerifyEkChain(*ek, EkCertificatePem(*ek), "self.pem"))) __builtin_trap();
      break;
    }
    case 1: {
      auto n = CheckEkCaBundle(input, "bundle.pem");
      if (!Failed(n) && *n == 0) __builtin_trap();
      break;
    }
    case 2: {
      auto ak = ParseAkPublic(input, "ak");
      if (Failed(ak)) break;
      if (ak->name.size() != 34 || ak->pem.empty() || ak->tpm_public != input) __builtin_trap();
      break;
    }
    case 3: {
      const size_t bar = input.find('|');
      auto c = ParseCredentialChallenge(input.substr(0, bar),
                                        bar == std::string_view::npos ? "" : input.substr(bar + 1),
                                        "challenge");
      if (!Failed(c) && (c->id_object.size() > kMaxIdObjectBytes ||
                         c->encrypted_secret.size() > kMaxEncryptedSecretBytes)) {
        __builtin_trap();
      }
      break;
    }
    case 4: {
      auto q = ParseQuoteDocument(input, "quote.json");
      if (Failed(q)) break;
      auto b = CheckEkBinding(*q, q->ek_certificate_pem, "bundle");
      if (Failed(b)) break;
      if (!b->ok()) {
        if (b->detail.empty()) __builtin_trap();
        break;
      }
      auto c = MakeCredential(b->ek, b->ak.name, "0123456789abcdef0123456789abcdef");
      if (!c.has_value()) __builtin_trap();
      break;
    }
    case 5: {
      auto r = vigil::hub::ParseActivateRequest(input);
      if (!Failed(r) && (r->secret.empty() || r->secret.size() > 32 || r->token.empty())) {
        __builtin_trap();
      }
      break;
    }
    case 6: {
      auto n = CheckEkCrls(input, "ek.crl");
      if (!Failed(n) && *n == 0) __builtin_trap();
      break;
    }
    case 7: {
      auto kind = EkKindOfChallenge(CredentialChallenge{"", std::string(input)});
      if (Failed(kind)) break;
      const size_t want = *kind == EkKind::kRsa2048 ? 256 : *kind == EkKind::kEccP256 ? 68 : 100;
      if (input.size() != want) __builtin_trap();
      break;
    }
  }
  return 0;
}
