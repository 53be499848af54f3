// vigil attest quote|verify|extend|events: TPM quotes over the PCR that holds the measurements of
// what Vigil loaded, and their verification (docs/attestation.md).

#include <openssl/rand.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "apps/vigil/govern_cli.h"
#include "core/config.h"
#include "core/files.h"
#include "govern/attest.h"
#include "govern/credential.h"
#include "govern/internal/files.h"
#include "govern/measure.h"
#include "govern/registry.h"

namespace vigil::app {
namespace {

// Where the TPM and the event list are, from the flags or the config.
struct TpmOptions {
  StateOptions state;
  std::string tcti;
  std::string events;
  uint32_t pcr = 0;  // 0: from the config

  void AddTo(CLI::App* cmd) {
    state.AddTo(cmd);
    cmd->add_option("--tcti", tcti,
                    "tpm2-tss TCTI, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321 "
                    "(default: attestation.tcti of the config)");
    cmd->add_option("--events", events,
                    "Event list (default: attestation.events, <state_dir>/attest/events.json)");
    cmd->add_option("--pcr", pcr, "The measured PCR, 16 or 23 (default: attestation.pcr, 23)");
  }

  core::Result<govern::MeasureOptions> Resolve() const {
    auto c = core::LoadConfig(state.config);
    if (!c.has_value()) return c.error();
    govern::MeasureOptions m;
    m.tcti = tcti.empty() ? c->attestation.tcti : tcti;
    m.events_path = events.empty() ? c->attestation.events : events;
    m.pcr = pcr == 0 ? c->attestation.pcr : pcr;
    if (m.tcti.empty()) {
      return core::InvalidArgument("no TPM configured: set attestation.tcti in " + state.config +
                                   " or give --tcti");
    }
    return m;
  }
};

core::Result<std::string> NonceOf(const std::string& hex) {
  auto bytes = govern::BytesOfHex(hex);
  if (!bytes || bytes->size() < govern::kMinNonceBytes ||
      bytes->size() > govern::kMaxNonceBytes) {
    return core::InvalidArgument("--nonce: expected " + std::to_string(govern::kMinNonceBytes) +
                                 " to " + std::to_string(govern::kMaxNonceBytes) +
                                 " bytes as hex digits");
  }
  return *bytes;
}

core::Result<std::vector<uint32_t>> PcrsOf(const std::string& list) {
  std::vector<uint32_t> out;
  if (list.empty()) return out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    uint32_t v = 0;
    bool ok = !item.empty() && item.size() <= 2;
    for (char ch : item) ok = ok && ch >= '0' && ch <= '9';
    if (ok) v = static_cast<uint32_t>(std::stoul(item));
    if (!ok || v > govern::kMaxPcr) {
      return core::InvalidArgument("--pcrs: \"" + item + "\" is not a PCR index 0..23");
    }
    out.push_back(v);
  }
  return out;
}

nlohmann::json EventsJson(const std::vector<govern::AttestEvent>& events) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& e : events) {
    arr.push_back({{"pcr", e.pcr}, {"digest", govern::HexOf(e.digest)}, {"kind", e.kind},
                   {"name", e.name}});
  }
  return arr;
}

struct QuoteCmd {
  TpmOptions tpm;
  std::string nonce;
  std::string pcrs;
  std::string out;
  bool ek = false;
  std::string ek_alg = "auto";
};

int RunQuote(const QuoteCmd& o) {
  auto nonce = NonceOf(o.nonce);
  if (!nonce.has_value()) return ReportError("attest quote", nonce.error());
  auto pcrs = PcrsOf(o.pcrs);
  if (!pcrs.has_value()) return ReportError("attest quote", pcrs.error());
  auto options = o.tpm.Resolve();
  if (!options.has_value()) return ReportError("attest quote", options.error());
  if (o.ek_alg != "auto") options->ek_kind = govern::EkKindOfName(o.ek_alg);
  auto measurer = govern::Measurer::Open(*options);
  if (!measurer.has_value()) return ReportError("attest quote", measurer.error());
  auto q = (*measurer)->Quote(*pcrs, *nonce, o.ek);
  if (!q.has_value()) return ReportError("attest quote", q.error());
  const std::string text = govern::EncodeQuoteDocument(*q);
  if (o.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  if (auto st = govern::internal::WriteFileAtomic(o.out, text, 0644); !st.ok()) {
    return ReportError("attest quote", st);
  }
  std::fprintf(stderr, "vigil attest quote: wrote %s (%zu event%s, PCRs", o.out.c_str(),
               q->events.size(), q->events.size() == 1 ? "" : "s");
  for (uint32_t p : q->pcrs) std::fprintf(stderr, " %u", p);
  std::fprintf(stderr, ")\n");
  return kExitOk;
}

struct VerifyCmd {
  std::string file;
  std::string nonce;
  std::string allow;
  std::string ak;
  std::string ek_ca;
  std::string ek_crl;
  std::string tcti;
  StateOptions state;
  bool json = false;
};

struct Residency {
  govern::QuoteFailure failure = govern::QuoteFailure::kNone;
  std::string detail;
  std::string ak_name;  // hex, once the AK is tied to the EK
};

// The local verifier's credential activation: the document's EK certificate must chain to the
// bundle, and the TPM at the configured TCTI must release a fresh random secret made for that EK
// and the document's AK name. Errors (bad bundle, no TPM) are the Result's error.
core::Result<Residency> CheckResidency(const VerifyCmd& o, const govern::QuoteDocument& q) {
  VIGIL_ASSIGN_OR_RETURN(const std::string bundle,
                         core::ReadFile(o.ek_ca, govern::kMaxCaBundleBytes));
  std::string crls;
  if (!o.ek_crl.empty()) {
    VIGIL_ASSIGN_OR_RETURN(crls, core::ReadFile(o.ek_crl, govern::kMaxCrlBytes));
  }
  VIGIL_ASSIGN_OR_RETURN(const govern::EkBinding b,
                         govern::CheckEkBinding(q, bundle, o.ek_ca, crls, o.ek_crl));
  Residency r;
  if (!b.ok()) {
    r.failure = b.failure;
    r.detail = b.detail;
    return r;
  }
  std::string tcti = o.tcti;
  if (tcti.empty()) {
    VIGIL_ASSIGN_OR_RETURN(const auto c, core::LoadConfig(o.state.config));
    tcti = c.attestation.tcti;
  }
  if (tcti.empty()) {
    return core::InvalidArgument("--ek-ca: the activation needs the quoting TPM: give --tcti or "
                                 "set attestation.tcti in " + o.state.config);
  }
  std::string secret(govern::kCredentialSecretBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) !=
      1) {
    return core::Internal("OpenSSL: no random bytes for the credential's secret");
  }
  VIGIL_ASSIGN_OR_RETURN(const govern::CredentialChallenge challenge,
                         govern::MakeCredential(b.ek, b.ak.name, secret));
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<govern::Tpm> tpm, govern::Tpm::Open(tcti));
  VIGIL_RETURN_IF_ERROR(tpm->Startup());
  auto got = tpm->ActivateCredential(challenge);
  if (!got.has_value() || *got != secret) {
    r.failure = govern::QuoteFailure::kActivationFailed;
    r.detail = "the TPM at " + tcti + " did not activate the credential made for EK \"" +
               b.ek.subject + "\" and AK name " + govern::HexOf(b.ak.name) + ": " +
               (got.has_value() ? std::string("it returned another secret")
                                : got.error().message());
    return r;
  }
  r.ak_name = govern::HexOf(b.ak.name);
  return r;
}

int RunVerify(const VerifyCmd& o) {
  const char* cmd = "attest verify";
  auto nonce = NonceOf(o.nonce);
  if (!nonce.has_value()) return ReportError(cmd, nonce.error());
  auto text = core::ReadFile(o.file, govern::kMaxQuoteBytes);
  if (!text.has_value()) return ReportError(cmd, text.error());
  auto q = govern::ParseQuoteDocument(*text, o.file);
  if (!q.has_value()) return ReportError(cmd, q.error());
  govern::QuoteCheckOptions options;
  options.nonce = *nonce;
  if (!o.allow.empty()) {
    auto list = core::ReadFile(o.allow, govern::kMaxEventListBytes);
    if (!list.has_value()) return ReportError(cmd, list.error());
    auto allowed = govern::ParseAllowlist(*list, o.allow);
    if (!allowed.has_value()) return ReportError(cmd, allowed.error());
    options.allowed = std::move(allowed).value();
  }
  if (!o.ak.empty()) {
    auto pem = core::ReadFile(o.ak, 1 << 16);
    if (!pem.has_value()) return ReportError(cmd, pem.error());
    options.expected_ak_pem = *pem;
  }
  auto check = govern::VerifyQuote(*q, options);
  if (!check.has_value()) return ReportError(cmd, check.error().WithContext(o.file));
  Residency residency;
  if (check->ok() && !o.ek_ca.empty()) {
    auto r = CheckResidency(o, *q);
    if (!r.has_value()) return ReportError(cmd, r.error());
    residency = std::move(r).value();
    check->failure = residency.failure;
    check->detail = residency.detail;
  }
  if (o.json) {
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [pcr, v] : q->pcr_values) values[std::to_string(pcr)] = govern::HexOf(v);
    nlohmann::json j = {{"file", o.file},
                        {"valid", check->ok()},
                        {"outcome", govern::QuoteFailureName(check->failure)},
                        {"reason", check->detail},
                        {"pcrs", q->pcrs},
                        {"pcr_values", values},
                        {"events", EventsJson(q->events)},
                        {"allowlist", !o.allow.empty()},
                        {"ak_pinned", !o.ak.empty()},
                        {"ek_checked", !o.ek_ca.empty()},
                        {"ak_name", residency.ak_name},
                        {"tpm_clock_ms", check->clock_ms},
                        {"tpm_reset_count", check->reset_count},
                        {"tpm_restart_count", check->restart_count}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  if (!check->ok()) {
    std::fprintf(stderr, "vigil attest verify: FAILED (%s): %s: %s\n",
                 std::string(govern::QuoteFailureName(check->failure)).c_str(), o.file.c_str(),
                 check->detail.c_str());
    return kExitFailure;
  }
  if (!o.json) {
    const std::string whose =
        !o.ek_ca.empty() ? "; the attestation key (name " + residency.ak_name +
                               ") lives in the TPM of the trusted EK certificate"
        : o.ak.empty()
            ? " (attestation key not pinned: give --ak or --ek-ca to check whose TPM)"
            : "";
    std::printf("%s: quote valid: %zu event%s replay to the quoted PCRs%s%s\n", o.file.c_str(),
                q->events.size(), q->events.size() == 1 ? "" : "s",
                o.allow.empty() ? "" : ", every digest allowed", whose.c_str());
  }
  return kExitOk;
}

struct ExtendCmd {
  TpmOptions tpm;
  std::string file;
  std::string kind = "file";
  std::string name;
  bool restart = false;
  bool json = false;
};

int RunExtend(const ExtendCmd& o) {
  const char* cmd = "attest extend";
  auto options = o.tpm.Resolve();
  if (!options.has_value()) return ReportError(cmd, options.error());
  auto bytes = core::ReadFile(o.file, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return ReportError(cmd, bytes.error());
  govern::AttestEvent e;
  e.digest = govern::Sha256Of(*bytes);
  e.kind = o.kind;
  e.name = o.name.empty() ? o.file : o.name;
  if (auto st = govern::ValidateEvent(e, "--kind/--name"); !st.ok()) return ReportError(cmd, st);
  auto measurer = govern::Measurer::Open(*options);
  if (!measurer.has_value()) return ReportError(cmd, measurer.error());
  core::Status st = o.restart ? (*measurer)->Restart(e) : (*measurer)->Measure(e);
  if (!st.ok()) return ReportError(cmd, st);
  auto value = (*measurer)->tpm().ReadPcr(options->pcr);
  if (!value.has_value()) return ReportError(cmd, value.error());
  if (o.json) {
    nlohmann::json j = {{"pcr", options->pcr}, {"digest", govern::HexOf(e.digest)},
                        {"kind", e.kind}, {"name", e.name}, {"restart", o.restart},
                        {"pcr_value", govern::HexOf(*value)}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("PCR %u extended with %s (%s %s); now %s\n", options->pcr,
                govern::HexOf(e.digest).c_str(), e.kind.c_str(), e.name.c_str(),
                govern::HexOf(*value).c_str());
  }
  return kExitOk;
}

struct EventsCmd {
  StateOptions state;
  std::string events;
  bool json = false;
};

int RunEvents(const EventsCmd& o) {
  const char* cmd = "attest events";
  std::string path = o.events;
  if (path.empty()) {
    auto c = core::LoadConfig(o.state.config);
    if (!c.has_value()) return ReportError(cmd, c.error());
    path = c->attestation.events;
  }
  auto text = core::ReadFile(path, govern::kMaxEventListBytes);
  if (!text.has_value()) return ReportError(cmd, text.error());
  auto events = govern::ParseEventList(*text, path);
  if (!events.has_value()) return ReportError(cmd, events.error());
  const auto replayed = govern::ReplayEvents(*events);
  if (o.json) {
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [pcr, v] : replayed) values[std::to_string(pcr)] = govern::HexOf(v);
    std::printf("%s\n", nlohmann::json({{"file", path},
                                        {"events", EventsJson(*events)},
                                        {"replayed", values}})
                            .dump(2)
                            .c_str());
    return kExitOk;
  }
  for (const auto& e : *events) {
    std::printf("PCR %-2u %s %-12s %s\n", e.pcr, govern::HexOf(e.digest).c_str(), e.kind.c_str(),
                e.name.c_str());
  }
  for (const auto& [pcr, v] : replayed) {
    std::printf("replayed PCR %u = %s\n", pcr, govern::HexOf(v).c_str());
  }
  return kExitOk;
}

}  // namespace

RunFn AddAttestCommand(CLI::App& root) {
  CommandGroup group(root, "attest",
                     "TPM attestation: quote the PCR that holds the measurements of what Vigil "
                     "loaded, and verify such quotes");
  group.app()->footer("Exit codes: 0 ok; 1 a quote that does not verify, or a TPM failure; 2 bad "
                      "usage or input (no TPM configured, malformed file, bad nonce).");

  auto q = std::make_shared<QuoteCmd>();
  CLI::App* quote = group.Add(
      "quote", "Quote the measured PCR(s) with the TPM's attestation key over a nonce; writes the "
               "quote, the attestation public key and the event list as one JSON document",
      [q] { return RunQuote(*q); });
  quote->add_option("--nonce", q->nonce, "The verifier's nonce, 8 to 64 bytes as hex")->required();
  quote->add_option("--pcrs", q->pcrs, "PCRs to quote, comma-separated (default: the measured one)");
  quote->add_option("--out", q->out, "Write the quote document here (default: stdout)");
  quote->add_flag("--ek", q->ek,
                  "Include the TPM's EK certificate so that a verifier can tie the attestation "
                  "key to it (verify --ek-ca)");
  quote->add_option("--ek-alg", q->ek_alg,
                    "Which EK certificate --ek includes: rsa2048 (NV index 0x01c00002), ecc-p256 "
                    "(0x01c0000a), ecc-p384 (0x01c00016), or auto: the first the TPM has, in "
                    "that order")
      ->check(CLI::IsMember({"auto", "rsa2048", "ecc-p256", "ecc-p384"}))
      ->capture_default_str();
  q->tpm.AddTo(quote);

  auto v = std::make_shared<VerifyCmd>();
  CLI::App* verify = group.Add(
      "verify", "Check a quote document: the signature, the nonce, and that replaying its event "
                "list gives the quoted PCR values (with only allowed digests); with --ek-ca, that "
                "its attestation key lives in the TPM of a trusted EK certificate",
      [v] { return RunVerify(*v); });
  verify->add_option("FILE", v->file, "Quote document written by `vigil attest quote`")->required();
  verify->add_option("--nonce", v->nonce, "The nonce the quote must be over (hex)")->required();
  verify->add_option("--allow", v->allow,
                     "Allowed digests, one per line as sha256sum prints them; every event must "
                     "be one of them");
  verify->add_option("--ak", v->ak, "Expected attestation public key (PEM); without it any key "
                                    "that signed consistently is accepted");
  verify->add_option("--ek-ca", v->ek_ca,
                     "Trusted EK CA bundle (PEM): the quote's EK certificate (quote --ek) must "
                     "chain to it, and the TPM at --tcti must activate a credential made for "
                     "that EK and the quote's attestation key (TPM2_ActivateCredential)");
  verify->add_option("--ek-crl", v->ek_crl,
                     "Certificate revocation lists (PEM, or one DER CRL) for --ek-ca: the EK "
                     "certificate must not be revoked, and its issuer's CRL must be here, "
                     "signed by it and current")
      ->needs(verify->get_option("--ek-ca"));
  verify->add_option("--tcti", v->tcti,
                     "The quoting TPM, for --ek-ca (default: attestation.tcti of the config)");
  v->state.AddTo(verify);
  verify->add_flag("--json", v->json, "Print the result as JSON");
  verify->footer("Exit codes: 0 valid; 1 bad signature, wrong key, wrong nonce, PCR or replay "
                 "mismatch, disallowed digest, untrusted or revoked EK, bad attestation key, "
                 "activation failed; 2 malformed quote, allowlist, key, EK CA bundle, CRL or "
                 "nonce, no TPM for --ek-ca.");

  auto e = std::make_shared<ExtendCmd>();
  CLI::App* extend = group.Add(
      "extend", "Measure a file into the PCR and the event list (what the agent does for each "
                "model and policy it loads)",
      [e] { return RunExtend(*e); });
  extend->add_option("FILE", e->file, "The file to measure")->required();
  extend->add_option("--kind", e->kind, "Event kind: model, policy, file... (a-z, 0-9, '-')")
      ->capture_default_str();
  extend->add_option("--name", e->name, "Name recorded in the event list (default: FILE)");
  extend->add_flag("--restart", e->restart,
                   "Reset the PCR and start a new event list with this file");
  extend->add_flag("--json", e->json, "Print the result as JSON");
  e->tpm.AddTo(extend);

  auto ev = std::make_shared<EventsCmd>();
  CLI::App* events = group.Add("events", "Show the event list and the PCR values it replays to",
                               [ev] { return RunEvents(*ev); });
  events->add_option("--events", ev->events,
                     "Event list (default: attestation.events of the config)");
  events->add_flag("--json", ev->json, "Print as JSON");
  ev->state.AddTo(events);
  return group.Runner();
}

}  // namespace vigil::app
