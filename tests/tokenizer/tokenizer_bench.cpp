// Single-threaded encode throughput: tokenizer_bench TOKENIZER TEXT_FILE [PASSES]
// Each line of TEXT_FILE is one document (JSON-escaped newlines are not expected: raw text lines).
// Prints MB/s for the first pass (cold word cache) and the best later pass. Used by scripts/bench_tokenize.sh.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/strings.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenizer_bench TOKENIZER TEXT_FILE [PASSES]\n");
    return 2;
  }
  int passes = argc > 3 ? std::atoi(argv[3]) : 5;
  auto t0 = std::chrono::steady_clock::now();
  auto tok = mathrl::load_tokenizer(argv[1]);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string text = mathrl::read_file(argv[2]);
  auto docs = mathrl::split(text, '\n');
  std::vector<int32_t> ids;
  double first = 0, best = 1e30;
  size_t n_ids = 0;
  for (int p = 0; p < passes; ++p) {
    auto start = std::chrono::steady_clock::now();
    n_ids = 0;
    for (const auto& d : docs) {
      ids.clear();
      tok->encode_into(d, false, ids);
      n_ids += ids.size();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (p == 0) first = s;
    else best = std::min(best, s);
  }
  double mb = text.size() / 1e6;
  std::printf("tokenizer: %s (%s, loaded in %.2fs)\n", argv[1], tok->kind().c_str(), load_s);
  std::printf("text: %s, %.2f MB, %zu docs, %zu tokens (%.2f bytes/token)\n", argv[2], mb, docs.size(), n_ids,
              text.size() / double(n_ids));
  std::printf("encode, 1 thread: first pass %.1f MB/s (cold cache)", mb / first);
  if (passes > 1) std::printf(", warm %.1f MB/s", mb / best);
  std::printf("\n");
  return 0;
}
