// Prompts for evaluation: few-shot chain-of-thought for base models (GSM8K 8-shot, MATH 4-shot in
// Minerva's "Final Answer: The final answer is ..." format), and DeepSeekMath's zero-shot instruct
// prompt. Exemplars come from each set's training split, chosen deterministically, so no test
// problem leaks into a prompt. Recipes can replace any template with a Lua function.
#pragma once
#include <string>
#include <vector>

#include "eval/benchmarks.h"

namespace mathrl::eval {

enum class PromptStyle {
  FewShot,   // base models
  ZeroShot,  // instruct models: "{question}\nPlease reason step by step, and put your final answer within \boxed{}."
};

// The exemplars for a benchmark's few-shot prompt: GSM8K 8 from gsm8k/train.jsonl, MATH-like sets
// 4 from math/train.jsonl (short Level 1-2 solutions), others 4 from GSM8K train. `count` < 0 uses
// the default count.
std::vector<Problem> default_exemplars(const std::string& benchmark, const std::string& data_dir, int count = -1);

// One exemplar as it appears in a few-shot prompt, and the prompt for a problem.
std::string format_exemplar(const std::string& benchmark, const Problem& shot);
std::string build_prompt(const std::string& benchmark, const Problem& problem, PromptStyle style,
                         const std::vector<Problem>& exemplars = {});

// GSM8K worked solutions without the calculator annotations ("<<48/2=24>>").
std::string strip_calculator_annotations(const std::string& text);

}  // namespace mathrl::eval
