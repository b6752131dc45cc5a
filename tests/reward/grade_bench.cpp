// Grading throughput on one core: typical (output, gold) pairs built from MATH500 and GSM8K, half
// equal and half not. Usage: grade_bench SHARED_DIR [SECONDS]. Prints one JSON line.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/jsonl.h"
#include "reward/grader.h"

int main(int argc, char** argv) {
  std::string shared = argc > 1 ? argv[1] : "../shared";
  double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  struct Pair {
    std::string output, gold;
  };
  std::vector<Pair> pairs;
  std::vector<std::string> math_answers, math_solutions;
  {
    mathrl::LineReader r(shared + "/data/math500/test.jsonl");
    std::string line;
    while (r.next(line)) {
      auto d = mathrl::parse_json(line, "math500");
      math_answers.push_back(d["answer"].GetString());
      math_solutions.push_back(d["solution"].GetString());
    }
  }
  for (size_t i = 0; i < math_answers.size(); ++i) {
    // A completion ending in a boxed answer vs the gold answer: its own (equal) and the next one's.
    pairs.push_back({math_solutions[i], math_answers[i]});
    pairs.push_back({math_solutions[i], math_answers[(i + 1) % math_answers.size()]});
  }
  {
    mathrl::LineReader r(shared + "/data/gsm8k/test.jsonl");
    std::string line, prev = "#### 0";
    while (r.next(line)) {
      auto d = mathrl::parse_json(line, "gsm8k");
      std::string answer = d["answer"].GetString();
      pairs.push_back({answer, answer});  // completion in GSM8K style vs the full reference solution
      pairs.push_back({answer, prev});
      prev = answer;
    }
  }
  size_t graded = 0, equal = 0;
  auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (const auto& p : pairs) equal += mathrl::grade(p.output, p.gold).equal;
    graded += pairs.size();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::printf("{\"pairs\": %zu, \"distinct_pairs\": %zu, \"equal_fraction\": %.3f, \"seconds\": %.3f, "
              "\"pairs_per_second\": %.0f}\n",
              graded, pairs.size(), static_cast<double>(equal) / graded, elapsed, graded / elapsed);
  return 0;
}
