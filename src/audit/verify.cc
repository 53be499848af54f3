#include "audit/verify.h"

#include <algorithm>
#include <cstring>

#include "audit/internal/files.h"
#include "core/files.h"

namespace vigil::audit {
namespace {

using internal::Hash;

constexpr int kMaxPayloadDepth = 64;

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

std::string Seq(uint64_t s) { return "record " + std::to_string(s); }

std::string_view HeaderErrorText(internal::HeaderError e) {
  switch (e) {
    case internal::HeaderError::kOk: return "ok";
    case internal::HeaderError::kShort: return "shorter than the 64-byte header";
    case internal::HeaderError::kMagic: return "wrong magic (not an audit segment)";
    case internal::HeaderError::kChecksum: return "header checksum mismatch";
    case internal::HeaderError::kVersion: return "unsupported format version";
    case internal::HeaderError::kSize: return "unexpected header size";
  }
  return "?";
}

}  // namespace

std::string_view FindingName(Finding f) {
  switch (f) {
    case Finding::kAltered: return "altered";
    case Finding::kMissing: return "missing";
    case Finding::kReordered: return "reordered";
    case Finding::kTruncated: return "truncated";
    case Finding::kBadSignature: return "bad-signature";
    case Finding::kMalformed: return "malformed";
  }
  return "?";
}

LogVerifier::LogVerifier(VerifyOptions options, OnRecord on_record)
    : options_(std::move(options)), on_record_(std::move(on_record)) {}

bool LogVerifier::Fail(Finding f, uint64_t seq, std::string_view segment, uint64_t offset,
                       std::string detail) {
  report_.problem = Problem{f, seq, std::string(segment), offset, std::move(detail)};
  stopped_ = true;
  return false;
}

uint64_t LogVerifier::FindAhead(std::string_view bytes, uint64_t offset, uint64_t seq) {
  internal::RecordFields f;
  while (offset < bytes.size() && internal::DecodeRecordHeader(bytes.substr(offset), &f)) {
    if (f.seq == seq) return offset;
    const uint64_t frame = internal::kRecordOverhead + uint64_t{f.payload_len};
    if (f.payload_len > internal::kMaxPayloadBytes || frame > bytes.size() - offset) break;
    offset += frame;
  }
  return 0;
}

bool LogVerifier::FeedSegment(std::string_view name, std::string_view bytes, bool last) {
  if (stopped_) return false;
  ++report_.segments;
  end_offset_ = 0;
  internal::SegmentHeader header;
  const internal::HeaderError he = internal::DecodeSegmentHeader(bytes, &header);
  if (he != internal::HeaderError::kOk) {
    return Fail(he == internal::HeaderError::kShort ? Finding::kTruncated : Finding::kMalformed,
                expected_, name, 0, "segment header: " + std::string(HeaderErrorText(he)));
  }
  uint64_t named_seq = 0;
  if (internal::ParseSegmentFileName(name, &named_seq) && named_seq != header.first_seq) {
    return Fail(Finding::kMalformed, expected_, name, 0,
                "the file name says the segment starts at " + Seq(named_seq) +
                    ", its header says " + Seq(header.first_seq));
  }
  uint64_t offset = internal::kSegmentHeaderSize;
  end_offset_ = offset;
  bool first_in_segment = true;
  while (offset < bytes.size()) {
    const std::string_view rest = bytes.substr(offset);
    internal::RecordFields f;
    if (rest.size() < internal::kRecordHeaderSize || !internal::DecodeRecordHeader(rest, &f)) {
      const bool cut = rest.size() < internal::kRecordHeaderSize;
      if (last && (cut || AllZero(rest))) {
        report_.torn_tail = TornTail{std::string(name), offset, rest.size(), expected_};
        return true;
      }
      if (cut) {
        return Fail(Finding::kTruncated, expected_, name, offset,
                    "the segment ends inside the header of " + Seq(expected_) +
                        " but later segments follow");
      }
      return Fail(Finding::kAltered, expected_, name, offset,
                  Seq(expected_) + ": its header check does not match its header bytes");
    }
    if (f.payload_len > internal::kMaxPayloadBytes) {
      return Fail(Finding::kMalformed, expected_, name, offset,
                  Seq(expected_) + ": payload length " + std::to_string(f.payload_len) +
                      " is over the format's limit");
    }
    const uint64_t frame = internal::kRecordOverhead + uint64_t{f.payload_len};
    if (frame > rest.size()) {
      if (last) {
        report_.torn_tail = TornTail{std::string(name), offset, rest.size(), f.seq};
        return true;
      }
      return Fail(Finding::kTruncated, f.seq, name, offset,
                  Seq(f.seq) + " is cut short (" + std::to_string(rest.size()) + " of " +
                      std::to_string(frame) + " bytes) and later segments follow");
    }
    // Sequence first: an intact header is trustworthy about where the record belongs.
    if (!started_ && options_.start_anywhere) {
      expected_ = f.seq;
    }
    if (f.seq != expected_) {
      if (f.seq > expected_) {
        const uint64_t later = FindAhead(bytes, offset + frame, expected_);
        if (later != 0) {
          return Fail(Finding::kReordered, expected_, name, later,
                      Seq(expected_) + " comes after " + Seq(f.seq) + " (at offset " +
                          std::to_string(later) + ")");
        }
        const std::string range = f.seq - expected_ == 1
                                      ? Seq(expected_) + " is"
                                      : "records " + std::to_string(expected_) + " to " +
                                            std::to_string(f.seq - 1) + " are";
        return Fail(Finding::kMissing, expected_, name, offset,
                    range + " missing (the next record present is " + std::to_string(f.seq) +
                        ")");
      }
      return Fail(Finding::kReordered, f.seq, name, offset,
                  Seq(f.seq) + " appears again after " + Seq(expected_ - 1));
    }
    if (first_in_segment && f.seq != header.first_seq) {
      return Fail(Finding::kMalformed, f.seq, name, offset,
                  "the segment header says it starts at " + Seq(header.first_seq) +
                      " but its first record is " + std::to_string(f.seq));
    }
    const std::string_view body = rest.substr(0, internal::kRecordHeaderSize + f.payload_len);
    const Hash h = internal::Sha256(body);
    if (std::memcmp(h.data(), rest.data() + body.size(), h.size()) != 0) {
      return Fail(Finding::kAltered, f.seq, name, offset,
                  Seq(f.seq) + ": its bytes do not hash to the hash stored with it");
    }
    if (started_ || !options_.start_anywhere) {
      if (f.prev_hash != prev_hash_) {
        if (!started_) {
          return Fail(Finding::kAltered, f.seq, name, offset,
                      Seq(f.seq) + ": the first record must hold an all-zero previous hash");
        }
        return Fail(Finding::kAltered, f.seq - 1, name, offset,
                    Seq(f.seq - 1) + " does not hash to the previous-record hash that " +
                        Seq(f.seq) + " holds (one of them was rewritten)");
      }
    }
    if (f.type == 0 || f.type > kMaxRecordType || f.flags != 0) {
      return Fail(Finding::kMalformed, f.seq, name, offset,
                  Seq(f.seq) + ": unknown record type " + std::to_string(f.type) +
                      " or non-zero flags");
    }
    const std::string_view payload = rest.substr(internal::kRecordHeaderSize, f.payload_len);
    const auto type = static_cast<RecordType>(f.type);
    if (options_.check_payloads || type == RecordType::kCheckpoint) {
      if (internal::JsonDepth(payload, kMaxPayloadDepth) > kMaxPayloadDepth) {
        return Fail(Finding::kMalformed, f.seq, name, offset,
                    Seq(f.seq) + ": payload nests deeper than " +
                        std::to_string(kMaxPayloadDepth) + " levels");
      }
      const nlohmann::json parsed = nlohmann::json::parse(payload, nullptr, false);
      if (parsed.is_discarded()) {
        return Fail(Finding::kMalformed, f.seq, name, offset,
                    Seq(f.seq) + ": payload is not valid JSON");
      }
      if (CanonicalJson(parsed) != payload) {
        return Fail(Finding::kMalformed, f.seq, name, offset,
                    Seq(f.seq) + ": payload is not canonical JSON");
      }
    }
    if (type == RecordType::kCheckpoint &&
        !CheckCheckpoint(f.seq, f.time_ns, payload, name, offset)) {
      return false;
    }
    if (!started_) report_.first_seq = f.seq;
    started_ = true;
    first_in_segment = false;
    prev_hash_ = h;
    expected_ = f.seq + 1;
    prev_type_ = last_type_;
    last_type_ = type;
    report_.last_seq = f.seq;
    ++report_.records;
    offset += frame;
    end_offset_ = offset;
    report_.clean_close =
        last_type_ == RecordType::kCheckpoint && prev_type_ == RecordType::kLogClose;
    if (on_record_) {
      RecordView v{f.seq, f.time_ns, type, payload, name, offset - frame};
      if (!on_record_(v)) {
        stopped_ = true;
        return false;
      }
    }
  }
  if (first_in_segment && started_ && header.first_seq != expected_) {
    return Fail(header.first_seq > expected_ ? Finding::kMissing : Finding::kMalformed, expected_,
                name, 0,
                "an empty segment starts at " + Seq(header.first_seq) + " where " +
                    Seq(expected_) + " was due");
  }
  return true;
}

bool LogVerifier::CheckCheckpoint(uint64_t seq, int64_t time_ns, std::string_view payload,
                                  std::string_view segment, uint64_t offset) {
  const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  auto field = [&](const char* key) -> std::string {
    if (!j.is_object()) return {};
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto covers_it = j.is_object() ? j.find("covers") : j.end();
  Hash chain{};
  PublicKey signer_key;
  Signature sig{};
  std::array<uint8_t, 8> printed_id{};
  bool ok = covers_it != j.end() && covers_it->is_number_unsigned() &&
            internal::ParseHex(field("chain_hash"), chain.data(), chain.size()) &&
            internal::ParseHex(field("public_key"), signer_key.key.data(), 32) &&
            internal::ParseHex(field("signature"), sig.data(), sig.size()) &&
            internal::ParseHex(field("key_id"), printed_id.data(), printed_id.size());
  if (!ok) {
    return Fail(Finding::kMalformed, seq, segment, offset,
                "checkpoint " + Seq(seq) +
                    ": payload lacks covers, chain_hash, key_id, public_key or signature");
  }
  // key_id is printed as minisign prints ids: the little-endian value in big-endian hex.
  std::reverse_copy(printed_id.begin(), printed_id.end(), signer_key.id.begin());
  const uint64_t covers = covers_it->get<uint64_t>();
  if (started_ && covers != expected_ - 1) {
    return Fail(Finding::kMalformed, seq, segment, offset,
                "checkpoint " + Seq(seq) + " claims to cover " + Seq(covers) + ", not " +
                    Seq(expected_ - 1));
  }
  if (started_ && chain != prev_hash_) {
    return Fail(Finding::kAltered, seq, segment, offset,
                "checkpoint " + Seq(seq) + " signs a chain hash that " + Seq(covers) +
                    " no longer has: records after " + Seq(report_.signed_through) +
                    " were rewritten");
  }
  if (options_.check_signatures) {
    if (options_.key.has_value() &&
        (options_.key->id != signer_key.id || options_.key->key != signer_key.key)) {
      return Fail(Finding::kBadSignature, seq, segment, offset,
                  "checkpoint " + Seq(seq) + " is signed by key " + KeyIdString(signer_key.id) +
                      ", not by the trusted key " + KeyIdString(options_.key->id));
    }
    if (!VerifySignature(signer_key, internal::CheckpointMessage(covers, chain, time_ns), sig)) {
      return Fail(Finding::kBadSignature, seq, segment, offset,
                  "checkpoint " + Seq(seq) + ": the Ed25519 signature by key " +
                      KeyIdString(signer_key.id) + " does not verify");
    }
  }
  const std::string id = KeyIdString(signer_key.id);
  if (std::find(report_.key_ids.begin(), report_.key_ids.end(), id) == report_.key_ids.end()) {
    report_.key_ids.push_back(id);
  }
  ++report_.checkpoints;
  report_.signed_through = covers;
  report_.last_checkpoint = seq;
  return true;
}

core::Status VerifyCheckpointNotice(const CheckpointNotice& c) {
  Hash chain{};
  PublicKey key;
  Signature sig{};
  std::array<uint8_t, 8> printed_id{};
  if (!internal::ParseHex(c.chain_hash, chain.data(), chain.size()) ||
      !internal::ParseHex(c.public_key, key.key.data(), key.key.size()) ||
      !internal::ParseHex(c.signature, sig.data(), sig.size()) ||
      !internal::ParseHex(c.key_id, printed_id.data(), printed_id.size())) {
    return core::InvalidArgument("checkpoint " + Seq(c.seq) +
                                 ": chain_hash, key_id, public_key or signature is not hex of "
                                 "the right length");
  }
  std::reverse_copy(printed_id.begin(), printed_id.end(), key.id.begin());
  if (!VerifySignature(key, internal::CheckpointMessage(c.covers, chain, c.time_ns), sig)) {
    return core::InvalidArgument("checkpoint " + Seq(c.seq) + ": the Ed25519 signature by key " +
                                 KeyIdString(key.id) + " does not verify");
  }
  return core::Status::Ok();
}

core::Result<std::vector<std::string>> ListSegments(const std::string& dir) {
  VIGIL_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDir(dir));
  std::vector<std::pair<uint64_t, std::string>> segs;
  for (std::string& n : names) {
    uint64_t first = 0;
    if (internal::ParseSegmentFileName(n, &first)) segs.emplace_back(first, std::move(n));
  }
  std::sort(segs.begin(), segs.end());
  std::vector<std::string> out;
  out.reserve(segs.size());
  for (auto& s : segs) out.push_back(std::move(s.second));
  return out;
}

core::Result<VerifyReport> VerifyLog(const std::string& dir, const VerifyOptions& options,
                                     const LogVerifier::OnRecord& on_record) {
  VIGIL_ASSIGN_OR_RETURN(std::vector<std::string> segments, ListSegments(dir));
  if (segments.empty()) {
    return core::NotFound("'" + dir + "' holds no audit log segments (*" +
                          std::string(internal::kSegmentSuffix) + ")");
  }
  LogVerifier verifier(options, on_record);
  for (size_t i = 0; i < segments.size(); ++i) {
    auto bytes = core::ReadFile(dir + "/" + segments[i], internal::kMaxSegmentBytes);
    if (!bytes.has_value()) {
      if (bytes.error().code() == core::StatusCode::kOutOfRange) {
        VerifyReport r = verifier.report();
        r.problem = Problem{Finding::kMalformed, r.last_seq + 1, segments[i], 0,
                            bytes.error().message()};
        return r;
      }
      return bytes.error();
    }
    if (!verifier.FeedSegment(segments[i], *bytes, i + 1 == segments.size())) break;
  }
  return verifier.report();
}

}  // namespace vigil::audit
