// libFuzzer target for enrolment input (src/hub/enrolment.h): the CSR an agent sends, the token
// it presents, the hub's token file, a CA fingerprint as an admin writes it (--ca-sha256) and a
// certificate whose fingerprint is taken. The first byte picks the parser, the rest is its
// input. Any bytes give a result or an error naming the input; an accepted CSR has a known key
// type; a parsed token file formats and parses back to the same records; an accepted
// fingerprint is 64 lowercase hex digits; a certificate's validity is read only from a
// certificate.
// Seeds: tests/fuzz/corpus/enrol/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hub/enrolment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto lower_hex64 = [](std::string_view h) {
    return h.size() == 64 && h.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  switch (data[0] % 5) {
    case 0: {
      auto csr = vigil::hub::CheckCsr(input, "csr");
      if (!csr.has_value()) {
        if (csr.error().message().substr(0, 5) != "csr: ") __builtin_trap();
      } else if (csr->key_type.empty()) {
        __builtin_trap();
      }
      break;
    }
    case 1: {
      const vigil::core::Status s = vigil::hub::CheckEnrolTokenForm(input, "token");
      const bool shaped = input.size() == 76 && input.starts_with(vigil::hub::kEnrolTokenPrefix);
      if (s.ok() && !shaped) __builtin_trap();
      if (!s.ok() && s.message().substr(0, 7) != "token: ") __builtin_trap();
      break;
    }
    case 3: {
      std::string fp;
      if (vigil::hub::ParseCertFingerprint(input, &fp) && !lower_hex64(fp)) __builtin_trap();
      break;
    }
    case 4: {
      auto fp = vigil::hub::CertSha256(input);
      if (fp.has_value() && !lower_hex64(*fp)) __builtin_trap();
      // The same bytes as a renewed certificate the agent takes (and a key beside it).
      auto validity = vigil::hub::CertValidity(input, "cert");
      if (validity.has_value() && !fp.has_value()) __builtin_trap();
      if (!validity.has_value() && validity.error().message().substr(0, 6) != "cert: ") {
        __builtin_trap();
      }
      (void)vigil::hub::KeyMatchesCert(input, input);
      break;
    }
    default: {
      auto tokens = vigil::hub::ParseEnrolTokenFile(input, "tokens");
      if (!tokens.has_value()) {
        if (tokens.error().message().substr(0, 8) != "tokens: ") __builtin_trap();
        break;
      }
      auto again = vigil::hub::ParseEnrolTokenFile(vigil::hub::FormatEnrolTokenFile(*tokens), "t");
      if (!again.has_value() || again->size() != tokens->size()) __builtin_trap();
      for (size_t i = 0; i < tokens->size(); ++i) {
        if ((*again)[i].sha256 != (*tokens)[i].sha256 ||
            (*again)[i].used_s != (*tokens)[i].used_s || (*again)[i].host != (*tokens)[i].host) {
          __builtin_trap();
        }
      }
    }
  }
  return 0;
}
