#include "govern/attest.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "govern/internal/openssl.h"

namespace vigil::govern {

using core::InvalidArgument;
using core::Result;
using core::Status;
using nlohmann::json;

namespace {

// Rejects keys outside `allowed` so that a misspelt field is never silently ignored.
Status OnlyKeys(const json& j, std::initializer_list<const char*> allowed, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::none_of(allowed.begin(), allowed.end(),
                     [&it](const char* k) { return it.key() == k; })) {
      return InvalidArgument(where + ": unknown key \"" + it.key() + "\"");
    }
  }
  return Status::Ok();
}

Result<std::string> StringAt(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return InvalidArgument(where + ": missing \"" + key + "\"");
  if (!it->is_string()) return InvalidArgument(where + ": \"" + key + "\" is not a string");
  return it->get<std::string>();
}

Result<std::string> HexAt(const json& j, const char* key, const std::string& where) {
  VIGIL_ASSIGN_OR_RETURN(const std::string hex, StringAt(j, key, where));
  auto bytes = BytesOfHex(hex);
  if (!bytes) return InvalidArgument(where + ": \"" + key + "\" is not hex");
  return *bytes;
}

Result<uint32_t> PcrAt(const json& j, const std::string& where) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() > kMaxPcr) {
    return InvalidArgument(where + ": a PCR index must be an integer 0.." +
                           std::to_string(kMaxPcr));
  }
  return static_cast<uint32_t>(j.get<uint64_t>());
}

json EventJson(const AttestEvent& e) {
  return {{"pcr", e.pcr}, {"digest", HexOf(e.digest)}, {"kind", e.kind}, {"name", e.name}};
}

Result<std::vector<AttestEvent>> EventsOf(const json& arr, const std::string& where) {
  if (!arr.is_array()) return InvalidArgument(where + ": \"events\" is not an array");
  if (arr.size() > kMaxEvents) {
    return InvalidArgument(where + ": more than " + std::to_string(kMaxEvents) + " events");
  }
  std::vector<AttestEvent> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string at = where + ": events[" + std::to_string(i) + "]";
    const json& e = arr[i];
    if (!e.is_object()) return InvalidArgument(at + ": not an object");
    VIGIL_RETURN_IF_ERROR(OnlyKeys(e, {"pcr", "digest", "kind", "name"}, at));
    AttestEvent ev;
    if (!e.contains("pcr")) return InvalidArgument(at + ": missing \"pcr\"");
    VIGIL_ASSIGN_OR_RETURN(ev.pcr, PcrAt(e["pcr"], at + ".pcr"));
    VIGIL_ASSIGN_OR_RETURN(const std::string digest, StringAt(e, "digest", at));
    auto d = DigestOfHex(digest);
    if (!d || digest.size() != 64) {
      return InvalidArgument(at + ": \"digest\" is not 64 hex digits (SHA-256)");
    }
    ev.digest = *d;
    VIGIL_ASSIGN_OR_RETURN(ev.kind, StringAt(e, "kind", at));
    VIGIL_ASSIGN_OR_RETURN(ev.name, StringAt(e, "name", at));
    VIGIL_RETURN_IF_ERROR(ValidateEvent(ev, at));
    out.push_back(std::move(ev));
  }
  return out;
}

using internal::Owned;
using internal::PublicKeyOfPem;

// The DER form of an ECDSA signature from its r and s.
std::optional<std::string> EcdsaDer(const TPM2B_ECC_PARAMETER& r, const TPM2B_ECC_PARAMETER& s) {
  Owned<ECDSA_SIG> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  BIGNUM* br = BN_bin2bn(r.buffer, r.size, nullptr);
  BIGNUM* bs = BN_bin2bn(s.buffer, s.size, nullptr);
  if (!sig || !br || !bs || ECDSA_SIG_set0(sig.get(), br, bs) != 1) {
    BN_free(br);
    BN_free(bs);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool VerifySha256(EVP_PKEY* key, std::string_view message, std::string_view sig) {
  Owned<EVP_MD_CTX> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

QuoteCheck Failed(QuoteFailure f, std::string detail) {
  QuoteCheck c;
  c.failure = f;
  c.detail = std::move(detail);
  return c;
}

}  // namespace

bool IsResettablePcr(uint32_t pcr) { return pcr == 16 || pcr == 23; }

Status ValidateEvent(const AttestEvent& e, std::string_view where) {
  const std::string at(where);
  if (e.pcr > kMaxPcr) return InvalidArgument(at + ": PCR " + std::to_string(e.pcr) + " > 23");
  if (e.kind.empty() || e.kind.size() > 32 ||
      !std::all_of(e.kind.begin(), e.kind.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return InvalidArgument(at + ": \"kind\" must be 1-32 of a-z, 0-9 and '-'");
  }
  if (e.name.empty() || e.name.size() > kMaxEventNameBytes ||
      std::any_of(e.name.begin(), e.name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return InvalidArgument(at + ": \"name\" must be 1-" + std::to_string(kMaxEventNameBytes) +
                           " bytes without control characters");
  }
  return Status::Ok();
}

std::string EncodeEventList(const std::vector<AttestEvent>& events) {
  json arr = json::array();
  for (const AttestEvent& e : events) arr.push_back(EventJson(e));
  json doc = {{"schema", kEventListSchema}, {"bank", "sha256"}, {"events", std::move(arr)}};
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::vector<AttestEvent>> ParseEventList(std::string_view text, std::string_view source) {
  const std::string src(source);
  if (text.size() > kMaxEventListBytes) return InvalidArgument(src + ": larger than 16 MiB");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(src + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(src + ": not a JSON object");
  VIGIL_RETURN_IF_ERROR(OnlyKeys(j, {"schema", "bank", "events"}, src));
  VIGIL_ASSIGN_OR_RETURN(const std::string schema, StringAt(j, "schema", src));
  if (schema != kEventListSchema) {
    return InvalidArgument(src + ": schema \"" + schema + "\" is not \"" + kEventListSchema + "\"");
  }
  VIGIL_ASSIGN_OR_RETURN(const std::string bank, StringAt(j, "bank", src));
  if (bank != "sha256") return InvalidArgument(src + ": bank \"" + bank + "\" is not \"sha256\"");
  if (!j.contains("events")) return InvalidArgument(src + ": missing \"events\"");
  return EventsOf(j["events"], src);
}

Sha256Digest Sha256Of(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Sha256Digest ExtendDigest(const Sha256Digest& pcr, const Sha256Digest& digest) {
  std::string buf(64, '\0');
  std::memcpy(buf.data(), pcr.data(), 32);
  std::memcpy(buf.data() + 32, digest.data(), 32);
  return Sha256Of(buf);
}

std::map<uint32_t, Sha256Digest> ReplayEvents(const std::vector<AttestEvent>& events) {
  std::map<uint32_t, Sha256Digest> pcrs;
  for (const AttestEvent& e : events) {
    auto it = pcrs.try_emplace(e.pcr).first;  // a new PCR starts at zero
    it->second = ExtendDigest(it->second, e.digest);
  }
  return pcrs;
}

std::string HexOf(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::optional<std::string> BytesOfHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::optional<Sha256Digest> DigestOfHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto bytes = BytesOfHex(hex);
  if (!bytes) return std::nullopt;
  Sha256Digest d{};
  std::memcpy(d.data(), bytes->data(), 32);
  return d;
}

Result<std::set<Sha256Digest>> ParseAllowlist(std::string_view text, std::string_view source) {
  const std::string src(source);
  if (text.size() > kMaxEventListBytes) return InvalidArgument(src + ": larger than 16 MiB");
  std::set<Sha256Digest> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.substr(0, 7) == "sha256:") line.remove_prefix(7);
    const std::string_view hex = line.substr(0, 64);
    const std::string_view rest = line.substr(hex.size());
    auto d = DigestOfHex(hex);
    if (!d || (!rest.empty() && rest.front() != ' ' && rest.front() != '\t')) {
      return InvalidArgument(src + ":" + std::to_string(line_no) +
                             ": expected a SHA-256 digest (64 hex digits), optionally followed "
                             "by a space and a name");
    }
    out.insert(*d);
  }
  return out;
}

std::string EncodeQuoteDocument(const QuoteDocument& q) {
  json values = json::object();
  for (const auto& [pcr, value] : q.pcr_values) values[std::to_string(pcr)] = HexOf(value);
  json events = json::array();
  for (const AttestEvent& e : q.events) events.push_back(EventJson(e));
  json doc = {{"schema", kQuoteSchema},
              {"nonce", HexOf(q.nonce)},
              {"bank", "sha256"},
              {"pcrs", q.pcrs},
              {"pcr_values", std::move(values)},
              {"attest", HexOf(q.attest)},
              {"signature", HexOf(q.signature)},
              {"ak_public", q.ak_public_pem},
              {"events", std::move(events)}};
  if (!q.ak_tpm_public.empty()) doc["ak_tpm_public"] = HexOf(q.ak_tpm_public);
  if (!q.ek_certificate_pem.empty()) doc["ek_certificate"] = q.ek_certificate_pem;
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<QuoteDocument> ParseQuoteDocument(std::string_view text, std::string_view source) {
  const std::string src(source);
  if (text.size() > kMaxQuoteBytes) return InvalidArgument(src + ": larger than 32 MiB");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(src + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(src + ": not a JSON object");
  VIGIL_RETURN_IF_ERROR(OnlyKeys(j,
                                 {"schema", "nonce", "bank", "pcrs", "pcr_values", "attest",
                                  "signature", "ak_public", "events", "ak_tpm_public",
                                  "ek_certificate"},
                                 src));
  VIGIL_ASSIGN_OR_RETURN(const std::string schema, StringAt(j, "schema", src));
  if (schema != kQuoteSchema) {
    return InvalidArgument(src + ": schema \"" + schema + "\" is not \"" + kQuoteSchema + "\"");
  }
  VIGIL_ASSIGN_OR_RETURN(const std::string bank, StringAt(j, "bank", src));
  if (bank != "sha256") return InvalidArgument(src + ": bank \"" + bank + "\" is not \"sha256\"");
  QuoteDocument q;
  VIGIL_ASSIGN_OR_RETURN(q.nonce, HexAt(j, "nonce", src));
  VIGIL_ASSIGN_OR_RETURN(q.attest, HexAt(j, "attest", src));
  VIGIL_ASSIGN_OR_RETURN(q.signature, HexAt(j, "signature", src));
  VIGIL_ASSIGN_OR_RETURN(q.ak_public_pem, StringAt(j, "ak_public", src));
  if (j.contains("ak_tpm_public")) {
    VIGIL_ASSIGN_OR_RETURN(q.ak_tpm_public, HexAt(j, "ak_tpm_public", src));
  }
  if (j.contains("ek_certificate")) {
    VIGIL_ASSIGN_OR_RETURN(q.ek_certificate_pem, StringAt(j, "ek_certificate", src));
  }
  if (!j.contains("pcrs") || !j["pcrs"].is_array() || j["pcrs"].empty()) {
    return InvalidArgument(src + ": \"pcrs\" must be a non-empty array of PCR indexes");
  }
  for (const json& p : j["pcrs"]) {
    VIGIL_ASSIGN_OR_RETURN(const uint32_t pcr, PcrAt(p, src + ": pcrs"));
    if (!q.pcrs.empty() && pcr <= q.pcrs.back()) {
      return InvalidArgument(src + ": \"pcrs\" must be ascending without repeats");
    }
    q.pcrs.push_back(pcr);
  }
  if (!j.contains("pcr_values") || !j["pcr_values"].is_object()) {
    return InvalidArgument(src + ": \"pcr_values\" must be an object of PCR index to digest");
  }
  for (auto it = j["pcr_values"].begin(); it != j["pcr_values"].end(); ++it) {
    const std::string& key = it.key();
    uint32_t pcr = 0;
    const bool numeric = !key.empty() && key.size() <= 2 &&
                         std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (numeric) pcr = static_cast<uint32_t>(std::stoul(key));
    if (!numeric || std::find(q.pcrs.begin(), q.pcrs.end(), pcr) == q.pcrs.end() ||
        std::to_string(pcr) != key) {
      return InvalidArgument(src + ": pcr_values: \"" + key + "\" is not one of \"pcrs\"");
    }
    auto d = it->is_string() ? DigestOfHex(it->get<std::string>()) : std::nullopt;
    if (!d) return InvalidArgument(src + ": pcr_values." + key + ": not 64 hex digits");
    q.pcr_values[pcr] = *d;
  }
  if (q.pcr_values.size() != q.pcrs.size()) {
    return InvalidArgument(src + ": \"pcr_values\" must hold a value for every PCR in \"pcrs\"");
  }
  if (!j.contains("events")) return InvalidArgument(src + ": missing \"events\"");
  VIGIL_ASSIGN_OR_RETURN(q.events, EventsOf(j["events"], src));
  return q;
}

std::string_view QuoteFailureName(QuoteFailure f) {
  switch (f) {
    case QuoteFailure::kNone: return "ok";
    case QuoteFailure::kBadSignature: return "bad-signature";
    case QuoteFailure::kUnknownKey: return "unknown-key";
    case QuoteFailure::kNotAQuote: return "not-a-quote";
    case QuoteFailure::kNonceMismatch: return "nonce-mismatch";
    case QuoteFailure::kPcrMismatch: return "pcr-mismatch";
    case QuoteFailure::kReplayMismatch: return "replay-mismatch";
    case QuoteFailure::kDisallowedDigest: return "disallowed-digest";
    case QuoteFailure::kUntrustedEk: return "untrusted-ek";
    case QuoteFailure::kBadAttestationKey: return "bad-attestation-key";
    case QuoteFailure::kActivationFailed: return "activation-failed";
  }
  return "unknown";
}

Result<QuoteCheck> VerifyQuote(const QuoteDocument& q, const QuoteCheckOptions& options) {
  VIGIL_ASSIGN_OR_RETURN(Owned<EVP_PKEY> ak, PublicKeyOfPem(q.ak_public_pem, "ak_public"));
  if (!options.expected_ak_pem.empty()) {
    VIGIL_ASSIGN_OR_RETURN(Owned<EVP_PKEY> want,
                           PublicKeyOfPem(options.expected_ak_pem, "expected attestation key"));
    if (EVP_PKEY_eq(ak.get(), want.get()) != 1) {
      return Failed(QuoteFailure::kUnknownKey,
                    "the quote's attestation key is not the expected one");
    }
  }

  // The signature, over the marshalled TPMS_ATTEST exactly as the TPM produced it.
  TPMT_SIGNATURE sig{};
  size_t offset = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(reinterpret_cast<const uint8_t*>(q.signature.data()),
                                       q.signature.size(), &offset, &sig) != TSS2_RC_SUCCESS ||
      offset != q.signature.size()) {
    return InvalidArgument("signature: not a marshalled TPMT_SIGNATURE");
  }
  std::string der;
  if (sig.sigAlg == TPM2_ALG_ECDSA && EVP_PKEY_get_base_id(ak.get()) == EVP_PKEY_EC) {
    if (sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
      return Failed(QuoteFailure::kBadSignature, "the ECDSA signature's hash is not SHA-256");
    }
    auto d = EcdsaDer(sig.signature.ecdsa.signatureR, sig.signature.ecdsa.signatureS);
    if (!d) return Failed(QuoteFailure::kBadSignature, "the ECDSA signature's r or s is invalid");
    der = std::move(*d);
  } else if (sig.sigAlg == TPM2_ALG_RSASSA && EVP_PKEY_get_base_id(ak.get()) == EVP_PKEY_RSA) {
    if (sig.signature.rsassa.hash != TPM2_ALG_SHA256) {
      return Failed(QuoteFailure::kBadSignature, "the RSASSA signature's hash is not SHA-256");
    }
    der.assign(reinterpret_cast<const char*>(sig.signature.rsassa.sig.buffer),
               sig.signature.rsassa.sig.size);
  } else {
    return Failed(QuoteFailure::kBadSignature,
                  "the signature's algorithm does not match the attestation key");
  }
  if (!VerifySha256(ak.get(), q.attest, der)) {
    return Failed(QuoteFailure::kBadSignature,
                  "the quote's signature does not verify with the attestation key");
  }

  // What was signed.
  TPMS_ATTEST attest{};
  offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(reinterpret_cast<const uint8_t*>(q.attest.data()),
                                    q.attest.size(), &offset, &attest) != TSS2_RC_SUCCESS ||
      offset != q.attest.size()) {
    return Failed(QuoteFailure::kNotAQuote, "the signed data is not a TPMS_ATTEST structure");
  }
  if (attest.magic != TPM2_GENERATED_VALUE) {
    return Failed(QuoteFailure::kNotAQuote, "the signed data was not generated by a TPM");
  }
  if (attest.type != TPM2_ST_ATTEST_QUOTE) {
    return Failed(QuoteFailure::kNotAQuote, "the signed data is not a quote");
  }
  QuoteCheck ok;
  ok.clock_ms = attest.clockInfo.clock;
  ok.reset_count = attest.clockInfo.resetCount;
  ok.restart_count = attest.clockInfo.restartCount;
  ok.firmware_version = attest.firmwareVersion;
  const std::string_view extra(reinterpret_cast<const char*>(attest.extraData.buffer),
                               attest.extraData.size);
  if (extra != options.nonce) {
    return Failed(QuoteFailure::kNonceMismatch,
                  "the quote is over nonce " + HexOf(extra) + ", not " + HexOf(options.nonce));
  }
  if (extra != q.nonce) {
    return Failed(QuoteFailure::kNonceMismatch, "the document's nonce is not the quoted one");
  }

  // The PCR selection and digest.
  const TPML_PCR_SELECTION& sel = attest.attested.quote.pcrSelect;
  std::vector<uint32_t> quoted;
  for (uint32_t b = 0; b < sel.count && b < TPM2_NUM_PCR_BANKS; ++b) {
    const TPMS_PCR_SELECTION& s = sel.pcrSelections[b];
    if (s.hash != TPM2_ALG_SHA256) {
      return Failed(QuoteFailure::kPcrMismatch, "the quote selects a bank other than sha256");
    }
    for (uint32_t i = 0; i < s.sizeofSelect && i < TPM2_PCR_SELECT_MAX; ++i) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if (s.pcrSelect[i] & (1u << bit)) quoted.push_back(i * 8 + bit);
      }
    }
  }
  if (quoted != q.pcrs) {
    std::string list;
    for (uint32_t p : quoted) list += (list.empty() ? "" : ",") + std::to_string(p);
    return Failed(QuoteFailure::kPcrMismatch,
                  "the quote covers PCRs {" + list + "}, not the document's \"pcrs\"");
  }
  std::string concat;
  for (uint32_t p : q.pcrs) {
    const Sha256Digest& v = q.pcr_values.at(p);
    concat.append(reinterpret_cast<const char*>(v.data()), v.size());
  }
  const Sha256Digest composite = Sha256Of(concat);
  const TPM2B_DIGEST& signed_digest = attest.attested.quote.pcrDigest;
  if (signed_digest.size != 32 || std::memcmp(signed_digest.buffer, composite.data(), 32) != 0) {
    return Failed(QuoteFailure::kPcrMismatch,
                  "the document's \"pcr_values\" are not the PCR values the TPM quoted");
  }

  // The event list against the quoted values.
  const std::map<uint32_t, Sha256Digest> replayed = ReplayEvents(q.events);
  for (const auto& [pcr, value] : replayed) {
    if (std::find(q.pcrs.begin(), q.pcrs.end(), pcr) == q.pcrs.end()) {
      return Failed(QuoteFailure::kReplayMismatch,
                    "the event list extends PCR " + std::to_string(pcr) + ", which is not quoted");
    }
  }
  for (uint32_t pcr : q.pcrs) {
    auto it = replayed.find(pcr);
    const Sha256Digest value = it == replayed.end() ? Sha256Digest{} : it->second;
    if (value != q.pcr_values.at(pcr)) {
      return Failed(QuoteFailure::kReplayMismatch,
                    "replaying the event list gives PCR " + std::to_string(pcr) + " = " +
                        HexOf(value) + ", the TPM quoted " + HexOf(q.pcr_values.at(pcr)));
    }
  }
  if (options.allowed) {
    for (size_t i = 0; i < q.events.size(); ++i) {
      const AttestEvent& e = q.events[i];
      if (options.allowed->count(e.digest) == 0) {
        return Failed(QuoteFailure::kDisallowedDigest,
                      "event " + std::to_string(i) + " (" + e.kind + " " + e.name + ", sha256 " +
                          HexOf(e.digest) + ") is not in the allowlist");
      }
    }
  }
  return ok;
}

}  // namespace vigil::govern
