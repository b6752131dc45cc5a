// `mathrl eval` (eval_cli.cpp): a model directory on benchmarks, through model_eval.h.
#pragma once

namespace mathrl::cli {
class Args;
int run_eval(const Args& args);
}  // namespace mathrl::cli
