// The per-call cost of the decision service's codecs for one score (docs/benchmarks.md): the
// HTTP API's JSON parse of a ScoreRequest and print of a ScoreResponse (api/codec.h), against
// the binary protobuf parse and serialise that gRPC does for the same messages. A 64-call
// window and an answer with three explanations, as `api_load` sends and `vigil serve` answers.
// Prints ns per operation (median of --rounds rounds); run under callgrind for counts that a
// busy machine does not disturb.
//
//   api_codec_bench [--iterations 20000] [--rounds 5]

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "api/codec.h"

namespace {

std::string RequestJson() {
  std::string body =
      R"({"schema_version":"vigil.api/v1","subject":"bench","arch":"i386","syscalls":[)";
  for (int i = 0; i < 64; ++i) body += std::to_string((i * 7 + 3) % 200) + (i < 63 ? "," : "");
  return body + "]}";
}

vigil::v1::ScoreResponse Response() {
  vigil::v1::ScoreResponse r;
  r.set_schema_version("vigil.api/v1");
  r.set_policy_version("sha256:652ae2161f45fc5d");
  vigil::v1::Score* s = r.mutable_result();
  s->set_score(0.99998455229942929);
  s->set_anomalous(true);
  s->set_model_name("syscall-ngram");
  s->set_model_version("1");
  for (const char* what : {"pause utime stty gtty access nice", "rename mkdir rmdir dup pipe times",
                           "dup pipe times prof brk setgid"}) {
    vigil::v1::Evidence* e = s->add_explanation();
    e->set_what(what);
    e->set_weight(15.98f);
  }
  return r;
}

template <typename Fn>
double NsPerOp(int iterations, int rounds, Fn&& fn) {
  std::vector<double> per_round;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) fn();
    per_round.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
        iterations);
  }
  std::sort(per_round.begin(), per_round.end());
  return per_round[per_round.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-call cost of the decision service's JSON and binary codecs for one score"};
  int iterations = 20000, rounds = 5;
  app.add_option("--iterations", iterations, "Operations per round")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000'000));
  app.add_option("--rounds", rounds, "Rounds (the median is printed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  const std::string json = RequestJson();
  const vigil::v1::ScoreResponse response = Response();
  vigil::v1::ScoreRequest parsed;
  if (auto s = vigil::api::ParseJson(json, &parsed); !s.ok()) {
    std::fprintf(stderr, "api_codec_bench: %s\n", s.message().c_str());
    return 1;
  }
  const std::string binary = parsed.SerializeAsString();
  size_t sink = 0;
  const double parse_json = NsPerOp(iterations, rounds, [&] {
    vigil::v1::ScoreRequest r;
    (void)vigil::api::ParseJson(json, &r);
    sink += static_cast<size_t>(r.syscalls_size());
  });
  const double print_json =
      NsPerOp(iterations, rounds, [&] { sink += vigil::api::ToJson(response).size(); });
  const double parse_binary = NsPerOp(iterations, rounds, [&] {
    vigil::v1::ScoreRequest r;
    r.ParseFromString(binary);
    sink += static_cast<size_t>(r.syscalls_size());
  });
  const double print_binary =
      NsPerOp(iterations, rounds, [&] { sink += response.SerializeAsString().size(); });
  std::printf("ScoreRequest JSON parse   %8.0f ns  (%zu bytes)\n", parse_json, json.size());
  std::printf("ScoreResponse JSON print  %8.0f ns  (%zu bytes)\n", print_json,
              vigil::api::ToJson(response).size());
  std::printf("ScoreRequest binary parse %8.0f ns  (%zu bytes)\n", parse_binary, binary.size());
  std::printf("ScoreResponse binary print%8.0f ns\n", print_binary);
  return sink == 0 ? 1 : 0;
}
