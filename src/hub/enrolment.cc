#include "hub/enrolment.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/file_lock.h"
#include "core/files.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

core::Status Denied(std::string m) {
  return core::Status(core::StatusCode::kPermissionDenied, std::move(m));
}

constexpr uint64_t kMaxTokenFileBytes = 16 << 20;
constexpr uint64_t kMaxPemBytes = 64 << 10;
constexpr std::string_view kTokenSchema = "vigil.enrol-tokens/v1";

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct ReqFree {
  void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Req = std::unique_ptr<X509_REQ, ReqFree>;

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, len);
}

bool IsLowerHex(std::string_view s) {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "" or a group name / host id (hub/fleet_requests.h, hub/requests.h).
bool ValidGroup(std::string_view s) { return s.empty() || ValidGroupName(s); }
bool ValidHost(std::string_view s) { return s.empty() || ValidHostId(s); }

std::string PemOf(X509* x) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string PemOfKey(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

core::Status WriteFileAtomically(const std::string& path, std::string_view text, unsigned mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return core::Unavailable(tmp + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      return core::Unavailable(tmp + ": write failed: " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return core::Unavailable(path + ": cannot replace: " + std::strerror(errno));
  }
  return {};
}

namespace {

core::Status WritePrivate(const std::string& path, std::string_view text) {
  return WriteFileAtomically(path, text, 0600);
}

core::Result<std::vector<EnrolTokenRecord>> ReadTokens(const std::string& path) {
  auto text = core::ReadFile(path, kMaxTokenFileBytes);
  if (!text.has_value()) {
    if (text.error().code() == core::StatusCode::kNotFound) {
      return std::vector<EnrolTokenRecord>{};
    }
    return text.error();
  }
  return ParseEnrolTokenFile(*text, path);
}

json RecordJson(const EnrolTokenRecord& r) {
  return {{"id", r.id},          {"sha256", r.sha256},       {"group", r.group},
          {"host", r.host},      {"created_s", r.created_s}, {"expires_s", r.expires_s},
          {"used_s", r.used_s},  {"used_by", r.used_by},     {"created_by", r.created_by},
          {"audited", r.audited}};
}

// Random bytes from OpenSSL's CSPRNG.
core::Result<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return core::Unavailable("enrolment: the random number generator failed");
  }
  return out;
}

bool SetRandomSerial(X509* x) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  return ok;
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate over `key` for `cn`, signed by `issuer_key` (issuer nullptr: self-signed).
Cert MakeCert(EVP_PKEY* key, const std::string& cn, const std::string& ou, X509* issuer,
              EVP_PKEY* issuer_key, int64_t now_s, int64_t ttl_s,
              const std::vector<std::pair<int, std::string>>& exts) {
  Cert x(X509_new());
  if (!x || X509_set_version(x.get(), 2) != 1 || !SetRandomSerial(x.get())) return nullptr;
  X509_NAME* name = X509_get_subject_name(x.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return nullptr;
  }
  if (!ou.empty() && X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                                reinterpret_cast<const unsigned char*>(ou.c_str()),
                                                -1, -1, 0) != 1) {
    return nullptr;
  }
  X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  if (ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(now_s - 300)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(now_s + ttl_s)) == nullptr ||
      X509_set_pubkey(x.get(), key) != 1) {
    return nullptr;
  }
  X509* signer = issuer != nullptr ? issuer : x.get();
  for (const auto& [nid, value] : exts) {
    if (!AddExt(x.get(), signer, nid, value)) return nullptr;
  }
  const EVP_MD* md = EVP_PKEY_get_id(issuer_key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  if (X509_sign(x.get(), issuer_key, md) <= 0) return nullptr;
  return x;
}

}  // namespace

// --- tokens -----------------------------------------------------------------------------------

core::Status CheckEnrolTokenForm(std::string_view token, std::string_view what) {
  if (!token.starts_with(kEnrolTokenPrefix) || token.size() != kEnrolTokenPrefix.size() + 64 ||
      !IsLowerHex(token.substr(kEnrolTokenPrefix.size()))) {
    return core::InvalidArgument(std::string(what) + ": expected \"" +
                                 std::string(kEnrolTokenPrefix) +
                                 "\" and 64 lowercase hex digits (from `vigil hub enrol-token "
                                 "create`)");
  }
  return {};
}

core::Result<std::vector<EnrolTokenRecord>> ParseEnrolTokenFile(std::string_view text,
                                                                std::string_view source) {
  const std::string src(source);
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return core::InvalidArgument(src + ": expected a JSON object");
  }
  if (!j.contains("schema_version") || j["schema_version"] != kTokenSchema) {
    return core::InvalidArgument(src + ": schema_version: expected \"" + std::string(kTokenSchema) +
                                 "\"");
  }
  if (!j.contains("tokens") || !j["tokens"].is_array()) {
    return core::InvalidArgument(src + ": tokens: expected an array");
  }
  std::vector<EnrolTokenRecord> out;
  const json& list = j["tokens"];
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string at = src + ": tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return core::InvalidArgument(at + ": expected an object");
    EnrolTokenRecord r;
    auto text_field = [&](const char* key, size_t max, std::string* o) -> core::Status {
      auto it = t.find(key);
      if (it == t.end() || !it->is_string() || it->get_ref<const std::string&>().size() > max) {
        return core::InvalidArgument(at + "." + key + ": expected a string of at most " +
                                     std::to_string(max) + " bytes");
      }
      *o = it->get<std::string>();
      return {};
    };
    auto int_field = [&](const char* key, int64_t* o) -> core::Status {
      auto it = t.find(key);
      if (it == t.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
        return core::InvalidArgument(at + "." + key + ": expected a non-negative integer");
      }
      *o = it->get<int64_t>();
      return {};
    };
    VIGIL_RETURN_IF_ERROR(text_field("id", 16, &r.id));
    VIGIL_RETURN_IF_ERROR(text_field("sha256", 64, &r.sha256));
    if (r.sha256.size() != 64 || !IsLowerHex(r.sha256) || r.id != r.sha256.substr(0, 16)) {
      return core::InvalidArgument(at +
                                   ".sha256: expected 64 lowercase hex digits that begin with id");
    }
    VIGIL_RETURN_IF_ERROR(text_field("group", 64, &r.group));
    if (!ValidGroup(r.group)) {
      return core::InvalidArgument(at + ".group: expected 0..64 bytes of [A-Za-z0-9._-]");
    }
    VIGIL_RETURN_IF_ERROR(text_field("host", 253, &r.host));
    if (!ValidHost(r.host)) {
      return core::InvalidArgument(at + ".host: expected 0..253 bytes of [A-Za-z0-9._:-]");
    }
    VIGIL_RETURN_IF_ERROR(int_field("created_s", &r.created_s));
    VIGIL_RETURN_IF_ERROR(int_field("expires_s", &r.expires_s));
    VIGIL_RETURN_IF_ERROR(int_field("used_s", &r.used_s));
    VIGIL_RETURN_IF_ERROR(text_field("used_by", 253, &r.used_by));
    VIGIL_RETURN_IF_ERROR(text_field("created_by", 256, &r.created_by));
    auto audited = t.find("audited");
    if (audited == t.end() || !audited->is_boolean()) {
      return core::InvalidArgument(at + ".audited: expected true or false");
    }
    r.audited = audited->get<bool>();
    out.push_back(std::move(r));
  }
  return out;
}

std::string FormatEnrolTokenFile(const std::vector<EnrolTokenRecord>& tokens) {
  json list = json::array();
  for (const EnrolTokenRecord& r : tokens) list.push_back(RecordJson(r));
  return json{{"schema_version", kTokenSchema}, {"tokens", std::move(list)}}.dump(1) + "\n";
}

core::Result<EnrolTokens::Issued> EnrolTokens::Create(const std::string& group,
                                                      const std::string& host, int64_t ttl_s,
                                                      int64_t now_s,
                                                      const std::string& created_by) {
  if (!ValidGroup(group)) {
    return core::InvalidArgument("group: expected 1..64 bytes of [A-Za-z0-9._-]");
  }
  if (!ValidHost(host)) {
    return core::InvalidArgument("host: expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (ttl_s < 1) return core::InvalidArgument("ttl: expected at least 1 second");
  VIGIL_ASSIGN_OR_RETURN(const std::string secret, RandomBytes(32));
  Issued out;
  out.token = std::string(kEnrolTokenPrefix) +
              Hex(reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  EnrolTokenRecord& r = out.record;
  r.sha256 = Sha256Hex(out.token);
  r.id = r.sha256.substr(0, 16);
  r.group = group;
  r.host = host;
  r.created_s = now_s;
  r.expires_s = now_s + ttl_s;
  r.created_by = created_by;
  VIGIL_ASSIGN_OR_RETURN(const core::FileLock lock, core::FileLock::Take(path_ + ".lock"));
  VIGIL_ASSIGN_OR_RETURN(std::vector<EnrolTokenRecord> all, ReadTokens(path_));
  std::erase_if(
      all, [&](const EnrolTokenRecord& t) { return t.audited && t.expires_s + 86400 < now_s; });
  all.push_back(r);
  VIGIL_RETURN_IF_ERROR(WritePrivate(path_, FormatEnrolTokenFile(all)));
  return out;
}

core::Result<EnrolTokenRecord> EnrolTokens::Consume(std::string_view token, const std::string& host,
                                                    int64_t now_s) {
  VIGIL_RETURN_IF_ERROR(CheckEnrolTokenForm(token, "token"));
  const std::string digest = Sha256Hex(token);
  VIGIL_ASSIGN_OR_RETURN(const core::FileLock lock, core::FileLock::Take(path_ + ".lock"));
  VIGIL_ASSIGN_OR_RETURN(std::vector<EnrolTokenRecord> all, ReadTokens(path_));
  for (EnrolTokenRecord& r : all) {
    if (r.sha256 != digest) continue;
    if (r.used_s != 0) {
      return Denied("enrolment token " + r.id + " was already used (by \"" + r.used_by + "\")");
    }
    if (now_s >= r.expires_s) {
      return Denied("enrolment token " + r.id + " expired");
    }
    if (!r.host.empty() && r.host != host) {
      return Denied("enrolment token " + r.id + " is for host \"" + r.host + "\", not \"" + host +
                    "\"");
    }
    r.used_s = now_s;
    r.used_by = host;
    VIGIL_RETURN_IF_ERROR(WritePrivate(path_, FormatEnrolTokenFile(all)));
    return r;
  }
  return Denied("unknown enrolment token");
}

core::Result<std::vector<EnrolTokenRecord>> EnrolTokens::TakeUnaudited() {
  VIGIL_ASSIGN_OR_RETURN(const core::FileLock lock, core::FileLock::Take(path_ + ".lock"));
  VIGIL_ASSIGN_OR_RETURN(std::vector<EnrolTokenRecord> all, ReadTokens(path_));
  std::vector<EnrolTokenRecord> out;
  for (EnrolTokenRecord& r : all) {
    if (r.audited) continue;
    r.audited = true;
    out.push_back(r);
  }
  if (!out.empty()) VIGIL_RETURN_IF_ERROR(WritePrivate(path_, FormatEnrolTokenFile(all)));
  return out;
}

core::Result<std::vector<EnrolTokenRecord>> EnrolTokens::List() const {
  VIGIL_ASSIGN_OR_RETURN(const core::FileLock lock, core::FileLock::Take(path_ + ".lock"));
  return ReadTokens(path_);
}

// --- certificates -----------------------------------------------------------------------------

core::Result<CsrInfo> CheckCsr(std::string_view pem, std::string_view what) {
  const std::string w(what);
  if (pem.empty()) return core::InvalidArgument(w + ": empty");
  if (pem.size() > kMaxPemBytes) {
    return core::InvalidArgument(w + ": over " + std::to_string(kMaxPemBytes) + " bytes");
  }
  if (pem.find("-----BEGIN CERTIFICATE REQUEST-----") == std::string_view::npos) {
    return core::InvalidArgument(w + ": no PEM \"CERTIFICATE REQUEST\" block");
  }
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Req req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
  if (!req) return core::InvalidArgument(w + ": not a well-formed PKCS#10 request");
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr) return core::InvalidArgument(w + ": no usable public key");
  CsrInfo info;
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &len);
      const std::string g(group);
      if (g != "prime256v1" && g != "secp384r1") {
        return core::InvalidArgument(w + ": EC key on curve \"" + g +
                                     "\"; expected P-256 or P-384");
      }
      info.key_type = g == "prime256v1" ? "EC P-256" : "EC P-384";
      break;
    }
    case EVP_PKEY_ED25519:
      info.key_type = "Ed25519";
      break;
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      if (bits < 2048) {
        return core::InvalidArgument(w + ": RSA key of " + std::to_string(bits) +
                                     " bits; expected at least 2048");
      }
      info.key_type = "RSA " + std::to_string(bits);
      break;
    }
    default:
      return core::InvalidArgument(w +
                                   ": unsupported key type; expected EC P-256/P-384, "
                                   "Ed25519 or RSA >= 2048 bits");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    return core::InvalidArgument(w + ": its signature does not verify with its own key");
  }
  return info;
}

struct HubCa::Keys {
  Pkey key;
  Cert cert;
};

HubCa::HubCa(std::unique_ptr<Keys> keys, std::string cert_pem)
    : keys_(std::move(keys)), cert_pem_(std::move(cert_pem)) {}
HubCa::~HubCa() = default;
HubCa::HubCa(HubCa&&) noexcept = default;
HubCa& HubCa::operator=(HubCa&&) noexcept = default;

core::Result<HubCa> HubCa::LoadOrCreate(const std::string& dir, int64_t now_s) {
  const std::string cert_path = dir + "/ca.pem", key_path = dir + "/ca.key";
  std::error_code ec;
  const bool have_cert = std::filesystem::exists(cert_path, ec);
  const bool have_key = std::filesystem::exists(key_path, ec);
  auto keys = std::make_unique<Keys>();
  if (!have_cert && !have_key) {
    VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir, 0700));
    keys->key.reset(EVP_EC_gen("P-256"));
    if (!keys->key) return core::Internal("hub ca: cannot generate a P-256 key");
    keys->cert = MakeCert(keys->key.get(), "vigil hub agent CA", "", nullptr, keys->key.get(),
                          now_s, int64_t{3650} * 86400,
                          {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                           {NID_key_usage, "critical,keyCertSign,cRLSign"},
                           {NID_subject_key_identifier, "hash"}});
    if (!keys->cert) return core::Internal("hub ca: cannot make the CA certificate");
    VIGIL_RETURN_IF_ERROR(WritePrivate(key_path, PemOfKey(keys->key.get())));
    const std::string pem = PemOf(keys->cert.get());
    VIGIL_RETURN_IF_ERROR(WriteFileAtomically(cert_path, pem, 0644));
    return HubCa(std::move(keys), pem);
  }
  if (!have_cert || !have_key) {
    return core::FailedPrecondition("hub ca: " + (have_cert ? key_path : cert_path) +
                                    " is missing while " + (have_cert ? cert_path : key_path) +
                                    " exists; restore it or remove both to make a new CA");
  }
  VIGIL_ASSIGN_OR_RETURN(const std::string cert_text, core::ReadFile(cert_path, kMaxPemBytes));
  VIGIL_ASSIGN_OR_RETURN(const std::string key_text, core::ReadFile(key_path, kMaxPemBytes));
  struct stat st {};
  if (::stat(key_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return core::FailedPrecondition("hub ca: " + key_path +
                                    " is readable by group or others; chmod 600 it");
  }
  Bio cb(BIO_new_mem_buf(cert_text.data(), static_cast<int>(cert_text.size())));
  keys->cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!keys->cert) return core::InvalidArgument(cert_path + ": not a PEM certificate");
  Bio kb(BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
  keys->key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!keys->key) return core::InvalidArgument(key_path + ": not an unencrypted PEM private key");
  if (X509_check_private_key(keys->cert.get(), keys->key.get()) != 1) {
    return core::InvalidArgument(key_path + ": does not match " + cert_path);
  }
  return HubCa(std::move(keys), cert_text);
}

core::Result<std::string> HubCa::SignAgentCsr(std::string_view csr_pem, const std::string& host,
                                              const std::string& group, int64_t now_s,
                                              int64_t ttl_s) const {
  if (auto c = CheckCsr(csr_pem, "csr"); !c.has_value()) return c.error();
  if (host.empty() || !ValidHost(host)) {
    return core::InvalidArgument("host: expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (!ValidGroup(group))
    return core::InvalidArgument("group: expected 0..64 bytes of [A-Za-z0-9._-]");
  Bio b(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  Req req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
  if (!req) return core::InvalidArgument("csr: not a well-formed PKCS#10 request");
  Cert x = MakeCert(X509_REQ_get0_pubkey(req.get()), host, group, keys_->cert.get(),
                    keys_->key.get(), now_s, ttl_s,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                     {NID_ext_key_usage, "clientAuth"},
                     {NID_authority_key_identifier, "keyid"}});
  if (!x) return core::Internal("hub ca: cannot sign the certificate for \"" + host + "\"");
  return PemOf(x.get());
}

core::Result<std::pair<std::string, std::string>> HubCa::IssueServerCert(
    const std::vector<std::string>& names, int64_t now_s, int64_t ttl_s) const {
  if (names.empty()) return core::InvalidArgument("agents.server_names: expected at least one");
  std::string san;
  for (const std::string& n : names) {
    in6_addr a6{};
    in_addr a4{};
    const bool ip =
        ::inet_pton(AF_INET, n.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, n.c_str(), &a6) == 1;
    if (!ip && (n.empty() || !ValidHost(n) || n.find(':') != std::string::npos)) {
      return core::InvalidArgument("agents.server_names: \"" + n +
                                   "\": expected a DNS name or an IP address");
    }
    san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + n;
  }
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) return core::Internal("hub ca: cannot generate a P-256 key");
  Cert x = MakeCert(key.get(), names.front(), "", keys_->cert.get(), keys_->key.get(), now_s, ttl_s,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                     {NID_ext_key_usage, "serverAuth"},
                     {NID_subject_alt_name, san},
                     {NID_authority_key_identifier, "keyid"}});
  if (!x) return core::Internal("hub ca: cannot make the agent port's server certificate");
  return std::pair{PemOfKey(key.get()), PemOf(x.get())};
}

core::Result<std::pair<std::string, std::string>> HubCa::PeerIdentity(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!x) return core::InvalidArgument("peer certificate: not a PEM certificate");
  auto entry = [&](int nid) {
    X509_NAME* name = X509_get_subject_name(x.get());
    const int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0) return std::string();
    const ASN1_STRING* v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                       static_cast<size_t>(ASN1_STRING_length(v)));
  };
  std::string host = entry(NID_commonName), group = entry(NID_organizationalUnitName);
  if (host.empty() || !ValidHost(host) || !ValidGroup(group)) {
    return Denied("peer certificate: its CN is not a host id or its OU not a group");
  }
  return std::pair{std::move(host), std::move(group)};
}

core::Result<std::pair<std::string, std::string>> MakeAgentKeyAndCsr(const std::string& host) {
  if (host.empty() || !ValidHost(host)) {
    return core::InvalidArgument("host: expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  Pkey key(EVP_EC_gen("P-256"));
  Req req(X509_REQ_new());
  if (!key || !req) return core::Internal("enrol: cannot generate a P-256 key");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return core::Internal("enrol: cannot make the certificate signing request");
  }
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(b.get(), req.get());
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::pair{PemOfKey(key.get()), std::string(data, static_cast<size_t>(n))};
}

}  // namespace vigil::hub

namespace vigil::hub {

core::Result<std::string> CertSha256(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!x) return core::InvalidArgument("not a PEM certificate");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(x.get(), EVP_sha256(), md, &n) != 1) {
    return core::Internal("certificate: SHA-256 failed");
  }
  return Hex(md, n);
}

core::Result<std::pair<int64_t, int64_t>> CertValidity(std::string_view pem,
                                                       std::string_view what) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!x) return core::InvalidArgument(std::string(what) + ": not a PEM certificate");
  std::pair<int64_t, int64_t> out;
  for (auto [t, dst] : {std::pair{X509_get0_notBefore(x.get()), &out.first},
                        std::pair{X509_get0_notAfter(x.get()), &out.second}}) {
    struct tm tm {};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
      return core::InvalidArgument(std::string(what) + ": unreadable validity time");
    }
    *dst = static_cast<int64_t>(timegm(&tm));
  }
  return out;
}

bool KeyMatchesCert(std::string_view key_pem, std::string_view cert_pem) {
  Bio kb(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  Pkey key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  Bio cb(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  Cert x(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  return key && x && X509_check_private_key(x.get(), key.get()) == 1;
}

bool ParseCertFingerprint(std::string_view text, std::string* out) {
  if (text.substr(0, 7) == "sha256:" || text.substr(0, 7) == "SHA256:") text.remove_prefix(7);
  std::string hex;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ':' && i % 3 == 2) continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 64) return false;
  *out = std::move(hex);
  return true;
}

namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// A TCP connection to host_port within timeout_ms (the socket's send and receive timeouts bound
// the handshake too); -1 with *why on failure.
int Connect(const std::string& host_port, int timeout_ms, std::string* why) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size()) {
    *why = "expected HOST:PORT";
    return -1;
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = host_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *why = std::string("cannot resolve: ") + ::gai_strerror(rc);
    return -1;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      *why = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

}  // namespace

core::Result<std::string> FetchPinnedCa(const std::string& host_port, const std::string& sha256,
                                        int timeout_ms) {
  const std::string where = "hub " + host_port;
  std::string why;
  const int fd = Connect(host_port, timeout_ms, &why);
  if (fd < 0) return core::Unavailable(where + ": " + why);
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  std::unique_ptr<SSL, SslFree> ssl(ctx ? SSL_new(ctx.get()) : nullptr);
  if (!ssl) {
    ::close(fd);
    return core::Internal(where + ": cannot set up TLS");
  }
  // Nothing is trusted in this handshake: it only collects the chain the server presents.
  SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
  SSL_set_min_proto_version(ssl.get(), TLS1_2_VERSION);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  SSL_set_fd(ssl.get(), fd);
  const int rc = SSL_connect(ssl.get());
  std::vector<Cert> chain;
  if (rc == 1) {
    STACK_OF(X509)* sk = SSL_get_peer_cert_chain(ssl.get());
    for (int i = 0; sk != nullptr && i < sk_X509_num(sk); ++i) {
      X509* c = sk_X509_value(sk, i);
      X509_up_ref(c);
      chain.emplace_back(c);
    }
    SSL_shutdown(ssl.get());
  }
  ssl.reset();
  ::close(fd);
  if (rc != 1) return core::Unavailable(where + ": TLS handshake failed");
  if (chain.empty()) return core::Unavailable(where + ": the server sent no certificate");
  std::vector<std::string> seen;
  for (const Cert& c : chain) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(c.get(), EVP_sha256(), md, &n) != 1) continue;
    const std::string fp = Hex(md, n);
    if (fp != sha256) {
      seen.push_back(fp);
      continue;
    }
    if (X509_check_ca(c.get()) <= 0) {
      return Denied(where + ": the certificate with SHA-256 " + fp + " is not a CA certificate");
    }
    if (X509_verify(chain.front().get(), X509_get0_pubkey(c.get())) != 1) {
      return Denied(where + ": the certificate with SHA-256 " + fp +
                    " did not sign the server's certificate");
    }
    Bio out(BIO_new(BIO_s_mem()));
    if (!out || PEM_write_bio_X509(out.get(), c.get()) != 1) {
      return core::Internal(where + ": cannot encode the CA certificate");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<size_t>(len));
  }
  std::string list;
  for (const std::string& fp : seen) list += (list.empty() ? "" : ", ") + fp;
  return Denied(where + ": no certificate it presented has SHA-256 " + sha256 + " (it presented " +
                list + ")");
}

}  // namespace vigil::hub
