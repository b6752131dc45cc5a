// The command-line table: every subcommand and its options, in one place. Runners live with
// their areas; this file only declares what the command line accepts.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cli/options.h"
#include "cli/run_cli.h"
#include "cli/version_cli.h"
#include "dist/launch.h"
#include "eval/decontam.h"
#include "eval/eval_cli.h"
#include "model/logprobs.h"
#include "report/report_cli.h"
#include "reward/grader.h"
#include "sampler/sampler_cli.h"
#include "tokenizer/tokenizer.h"
#include "common/error.h"
#include "common/strings.h"

namespace mathrl::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"run", "Run a recipe (a Lua file that returns a mathrl stage table).", "RECIPE.lua",
       "Recipe fields can be overridden by dotted path: --set rl.beta=0.02 --set name=trial3.\n"
       "Recipe errors (syntax, runtime, unknown or mistyped field) exit with status 2 before any heavy work.",
       1, 1,
       {
           {"set", Kind::List, "", "override a recipe field by dotted path", "KEY=VALUE"},
           {"out", Kind::String, "", "run directory (default: runs/<name>-<time>)", "DIR"},
           {"runs-root", Kind::String, "runs", "where run directories are created", "DIR"},
           {"seed", Kind::Int, "", "override the recipe's seed", "N"},
           {"device", Kind::String, "", "override the recipe's device (cpu, cuda, cuda:N)", "DEV"},
           {"check", Kind::Flag, "", "load and validate the recipe, print it resolved, and exit"},
           {"resume", Kind::String, "", "resume from a run directory or checkpoint", "PATH"},
       },
       run_recipe},
      {"logprobs", "Score token sequences: log p(next token | prefix) under a model.", "[FILE]",
       "Reads JSONL {\"ids\": [...]} lines from FILE or stdin; writes {\"logprobs\": [...]} with len(ids)-1 values\n"
       "per line, in order. The model directory holds config.json and model.safetensors (or shards) in\n"
       "Hugging Face layout. A bad line (id outside the vocabulary, empty, longer than the context) stops with\n"
       "an error naming it.",
       0, 1,
       {
           {"model", Kind::String, "", "model directory (required)", "DIR"},
           {"device", Kind::String, "cpu", "cpu, cuda, cuda:N or auto", "DEV"},
           {"dtype", Kind::String, "float32", "float32, bfloat16 or float16", "TYPE"},
           {"batch-tokens", Kind::Int, "8192", "tokens per forward pass (sequences are batched up to this)", "N"},
       },
       run_logprobs},
      {"tokenize", "Encode JSONL text to token ids, or decode ids back to text (--decode).", "[FILE]",
       "Reads FILE (or stdin) line by line: {\"text\": ...} objects (raw lines with --raw); writes one\n"
       "{\"ids\": [...]} line per input line, in order. Special tokens written in the text are recognized as the\n"
       "reference libraries do; BOS/EOS only with --add-special. --decode reads {\"ids\": [...]} and writes\n"
       "{\"text\": ...}. A bad line (invalid JSON, missing field, invalid UTF-8, id out of range) stops with an\n"
       "error naming the line (exit 1).",
       0, 1,
       {
           {"tokenizer", Kind::String, "", "tokenizer.json, SentencePiece .model, or a directory (required)", "PATH"},
           {"raw", Kind::Flag, "", "input lines are plain text, not JSON"},
           {"add-special", Kind::Flag, "", "apply the post-processor (e.g. BOS) when encoding"},
           {"decode", Kind::Flag, "", "decode {\"ids\": [...]} lines to {\"text\": ...}"},
           {"skip-special", Kind::Flag, "", "with --decode: drop special tokens from the text"},
           {"field", Kind::String, "", "JSON field to read (default: text, or ids with --decode)", "NAME"},
           {"shard", Kind::String, "", "write a token shard (uint16 or uint32, documents separated by EOS) instead of JSONL", "OUT.bin"},
       },
       run_tokenize},
      {"decontam", "Remove training documents that overlap evaluation benchmarks (10-gram match).", "[FILE]",
       "Reads JSONL documents from FILE or stdin and writes the clean ones (unchanged) to stdout or --out.\n"
       "A document is removed when it shares an n-gram of normalized words with any question, answer or\n"
       "solution of the named benchmarks; benchmark texts shorter than n words must appear whole. The report\n"
       "(kept, removed, removed per benchmark) goes to stderr; --removed lists the removed lines.",
       0, 1,
       {
           {"bench", Kind::String, "gsm8k,math", "benchmarks to decontaminate against (comma-separated)", "NAMES"},
           {"data-dir", Kind::String, "../shared/data", "where the benchmark files are", "DIR"},
           {"field", Kind::String, "text", "JSON field holding the document text", "NAME"},
           {"raw", Kind::Flag, "", "input lines are plain text, not JSON"},
           {"ngram", Kind::Int, "10", "n-gram length in words", "N"},
           {"out", Kind::String, "", "write clean documents here instead of stdout", "FILE"},
           {"removed", Kind::String, "", "write {line, benchmark} for each removed document here", "FILE"},
       },
       run_decontam},
      {"grade", "Check final answers: extract each prediction's answer and compare it with the reference.", "[FILE]",
       "Reads JSONL {\"pred\": model output or answer, \"gold\": reference answer or full solution} lines from\n"
       "FILE or stdin; writes one {\"equal\": bool, \"pred_answer\": ..., \"gold_answer\": ...} line per input line,\n"
       "in order. Answers are taken from \\boxed{}, \"The answer is\", GSM8K's ####, Chinese answer phrases, else the\n"
       "last number; equality is math-aware (LaTeX, exact fractions, sets, intervals, matrices, symbolic\n"
       "expressions). A malformed line yields equal=false with an \"error\" field; work per pair is bounded.",
       0, 1,
       {
           {"no-fallback", Kind::Flag, "", "do not take the last number when the text has no explicit answer"},
       },
       run_grade},
      {"launch", "Start N ranks of a command with torchrun's environment and supervise them.", "-- COMMAND...",
       "Each rank runs this binary with COMMAND (for example: mathrl launch --nproc-per-node 2 -- run R.lua)\n"
       "and RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set. When a rank fails, the others get SIGTERM,\n"
       "then SIGKILL after --grace seconds, and the job exits naming the rank. torchrun --no-python and srun\n"
       "start the same program the same way.",
       1, -1,
       {
           {"nproc-per-node", Kind::Int, "1", "ranks on this node", "N"},
           {"nnodes", Kind::Int, "1", "nodes in the job", "N"},
           {"node-rank", Kind::Int, "0", "this node's index", "I"},
           {"master-addr", Kind::String, "127.0.0.1", "address of rank 0's node", "HOST"},
           {"master-port", Kind::Int, "29500", "rendezvous port on rank 0's node", "PORT"},
           {"grace", Kind::Float, "10", "seconds between SIGTERM and SIGKILL when stopping ranks", "S"},
       },
       run_launch},
      {"generate", "Sample completions for JSONL prompts with the batched rollout engine.", "[FILE]",
       "Reads FILE (or stdin): one {\"prompt\": text} (encoded with the tokenizer's special tokens, e.g. BOS)\n"
       "or {\"ids\": [...]} object per line. Writes one line per completion, ordered by prompt then sample:\n"
       "{prompt_index, sample_index, text, ids, logprobs, finish_reason (eos|stop|length), prompt_tokens,\n"
       "completion_tokens}. ids include the EOS or stop-completing token; text excludes the EOS and ends before a\n"
       "stop string. logprobs are log_softmax(logits / T) over the whole vocabulary (T = 1 with --greedy).\n"
       "Sample j of prompt i is seeded from (--seed, i, j): the same whatever the batch. A bad line (invalid\n"
       "JSON or UTF-8, empty prompt, id out of range, prompt filling the context) stops with an error naming it.",
       0, 1,
       {
           {"model", Kind::String, "", "Hugging Face checkpoint directory (required)", "DIR"},
           {"tokenizer", Kind::String, "", "tokenizer file or directory (default: the model directory)", "PATH"},
           {"n", Kind::Int, "1", "completions per prompt", "N"},
           {"temperature", Kind::Float, "1.0", "sampling temperature (> 0)", "T"},
           {"top-k", Kind::Int, "0", "keep the k most likely tokens (0 = off)", "K"},
           {"top-p", Kind::Float, "1.0", "nucleus sampling mass (1 = off)", "P"},
           {"min-p", Kind::Float, "0.0", "drop tokens below min-p times the top probability (0 = off)", "P"},
           {"max-new-tokens", Kind::Int, "256", "completion length limit", "N"},
           {"seed", Kind::Int, "0", "sampling seed", "N"},
           {"greedy", Kind::Flag, "", "argmax decoding (ignores temperature and filters)"},
           {"ignore-eos", Kind::Flag, "", "keep generating past EOS"},
           {"stop", Kind::List, "", "stop string (repeatable)", "TEXT"},
           {"device", Kind::String, "cpu", "cpu, cuda or cuda:N", "DEV"},
           {"dtype", Kind::String, "", "float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 on CPU)", "T"},
           {"max-batch", Kind::Int, "256", "sequences decoded at once (capped by the KV-cache memory budget)", "N"},
       },
       sampler::run_generate},
      {"bench", "Run a speed benchmark by name (generate).", "NAME",
       "bench generate: random prompts (--prompts x --n samples, --prompt-len tokens, EOS ignored) through the\n"
       "engine on --model DIR or a random-init LLaMA-style --preset (0.5b, 1.5b, tiny); prints one JSON line:\n"
       "tokens/s, prefill/decode seconds, measured copy bandwidth and the fraction of the memory-bandwidth\n"
       "roofline (weights + K/V bytes read per decode step / bandwidth, over the decode time).",
       1, 1,
       {
           {"model", Kind::String, "", "checkpoint directory (default: a random --preset model)", "DIR"},
           {"preset", Kind::String, "0.5b", "random-init model shape: 0.5b, 1.5b or tiny", "NAME"},
           {"prompts", Kind::Int, "64", "distinct prompts", "N"},
           {"n", Kind::Int, "8", "samples per prompt", "N"},
           {"prompt-len", Kind::Int, "256", "prompt tokens", "N"},
           {"max-new-tokens", Kind::Int, "512", "tokens generated per sample", "N"},
           {"temperature", Kind::Float, "1.0", "sampling temperature", "T"},
           {"top-k", Kind::Int, "0", "top-k (0 = off)", "K"},
           {"top-p", Kind::Float, "1.0", "top-p (1 = off)", "P"},
           {"split-timing", Kind::Flag, "", "synchronize after each model step to report model and sampling time apart"},
           {"min-p", Kind::Float, "0.0", "min-p (0 = off)", "P"},
           {"greedy", Kind::Flag, "", "argmax decoding"},
           {"seed", Kind::Int, "0", "seed for weights, prompts and sampling", "N"},
           {"device", Kind::String, "", "cpu, cuda or cuda:N (default: cuda when available)", "DEV"},
           {"dtype", Kind::String, "", "float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 on CPU)", "T"},
           {"max-batch", Kind::Int, "", "sequences decoded at once (default: prompts x n, capped by memory)", "N"},
           {"kv-fraction", Kind::Float, "0.9", "fraction of free device memory the KV cache may use", "F"},
           {"out", Kind::String, "", "also write the JSON result to this file", "FILE"},
       },
       sampler::run_bench},
      {"eval", "Evaluate a model on benchmarks (GSM8K, MATH, ...): greedy accuracy, pass@k, maj@k.", "",
       "Prompts each problem of --bench (few-shot chain of thought for base models: GSM8K 8-shot, MATH-style\n"
       "4-shot Minerva; the zero-shot instruct prompt with --instruct or --style zeroshot), generates with the\n"
       "rollout engine (--samples 1: greedy; K > 1: K samples at --temperature/--top-p, sample j of problem i\n"
       "seeded from (--seed, i, j)), extracts and grades answers with the native grader (maj@k groups answers by\n"
       "its equivalence) and prints a table with 95% intervals. With --out DIR: <bench>.generations.jsonl (every\n"
       "completion, its extracted answer and verdict), summary.json and summary.md; running again with the same\n"
       "--out resumes an interrupted evaluation (same settings required). Benchmarks: gsm8k, math, math500,\n"
       "svamp, asdiv, mawps, minerva_math, ocw, cmath, mgsm_zh, sat, mmlu_stem, gaokao_cloze, gaokao_qa.",
       0, 0,
       {
           {"model", Kind::String, "", "Hugging Face checkpoint directory (required)", "DIR"},
           {"bench", Kind::String, "", "benchmarks, comma-separated (required)", "NAMES"},
           {"data-dir", Kind::String, "../shared/data", "where the benchmark files are", "DIR"},
           {"path", Kind::String, "", "a JSONL file replacing the benchmark's own (one --bench only)", "FILE"},
           {"tokenizer", Kind::String, "", "tokenizer file or directory (default: the model directory)", "PATH"},
           {"samples", Kind::Int, "1", "completions per problem (1 = greedy)", "K"},
           {"temperature", Kind::Float, "0.7", "sampling temperature when --samples > 1", "T"},
           {"top-p", Kind::Float, "1.0", "nucleus sampling mass when --samples > 1 (1 = off)", "P"},
           {"k", Kind::String, "", "k values for pass@k / maj@k, comma-separated (default 1,2,4,... up to K)", "LIST"},
           {"style", Kind::String, "auto", "auto (few-shot unless --instruct), fewshot or zeroshot", "STYLE"},
           {"instruct", Kind::Flag, "", "the model is instruction-tuned: --style auto picks the zero-shot prompt"},
           {"max-new-tokens", Kind::Int, "512", "completion length limit", "N"},
           {"limit", Kind::Int, "0", "first N problems of each benchmark (0 = all)", "N"},
           {"seed", Kind::Int, "0", "sampling seed", "N"},
           {"stop", Kind::List, "", "extra stop string (repeatable; few-shot formats add their own)", "TEXT"},
           {"device", Kind::String, "", "cpu, cuda or cuda:N (default: cuda when available)", "DEV"},
           {"dtype", Kind::String, "", "float32, bfloat16 or float16 (default: bf16 on CUDA, fp32 on CPU)", "T"},
           {"batch", Kind::Int, "256", "decode slots (sequences in flight; capped by the KV-cache memory budget)", "N"},
           {"chunk", Kind::Int, "0", "problems per engine call (0 = all; finished problems are written as they finish)", "N"},
           {"out", Kind::String, "", "write generations and summaries here; an earlier run there resumes", "DIR"},
           {"quiet", Kind::Flag, "", "no progress display"},
       },
       run_eval},
      {"report", "Write RUN_DIR/report.md: accuracy by stage and SVG plots of the run's metrics.", "RUN_DIR",
       "Reads every metrics.jsonl in RUN_DIR and its stage sub-directories, and every evaluation summary.json\n"
       "(RUN_DIR/eval/<stage>/summary.json, as mathrl eval writes it). Writes report.md with the accuracy table\n"
       "by stage (greedy, maj@k, pass@k), plots under RUN_DIR/plots/ (losses; reward, KL, completion length and\n"
       "accuracy over steps; pass@k and maj@k against k by stage) and each metric's last value. Prints the path.",
       1, 1,
       {
           {"title", Kind::String, "", "report title (default: Run <directory name>)", "TEXT"},
       },
       report::run_report},
      {"version", "Print the version, the LibTorch version and whether CUDA is usable.", "", "", 0, 0, {}, run_version},
  };
  return table;
}

namespace {

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& c : commands()) names.push_back(c.name);
  return names;
}

void print_main_help() {
  std::printf("usage: mathrl <command> [options] [args]\n\n"
              "mathrl: DeepSeekMath-style training (base, instruct, GRPO) and evaluation, driven by Lua recipes.\n\n"
              "commands:\n");
  for (const auto& c : commands()) std::printf("  %-12s %s\n", c.name.c_str(), c.summary.c_str());
  std::printf("\n'mathrl <command> --help' describes a command's options.\n");
}

// Under `mathrl launch`, a rank's fatal error goes to $MATHRL_ERROR_FILE with a time stamp, so the
// launcher can name the rank that failed first rather than the peers that failed because of it.
void record_fatal_error(const char* message) {
  const char* path = std::getenv("MATHRL_ERROR_FILE");
  if (!path || !*path) return;
  if (FILE* f = std::fopen(path, "w")) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    std::fprintf(f, "%lld\n%s\n", static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()),
                 message);
    std::fclose(f);
  }
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

int main_dispatch(int argc, char** argv) {
  std::vector<std::string> rest(argv + 1, argv + argc);
  try {
    if (rest.empty()) {
      print_main_help();
      return 2;
    }
    std::string name = rest.front();
    rest.erase(rest.begin());
    if (name == "--help" || name == "-h" || name == "help") {
      if (!rest.empty() && find_command(rest.front())) {
        std::fputs(help_text(*find_command(rest.front())).c_str(), stdout);
      } else {
        print_main_help();
      }
      return 0;
    }
    if (name == "--version") name = "version";
    const Command* cmd = find_command(name);
    if (!cmd) throw UsageError(str("unknown command '", name, "'", did_you_mean(name, command_names()),
                                   "\n(see 'mathrl --help')"));
    for (const auto& a : rest) {
      if (a == "--") break;
      if (a == "--help" || a == "-h") {
        std::fputs(help_text(*cmd).c_str(), stdout);
        return 0;
      }
    }
    Args args = parse(*cmd, rest);
    return cmd->run(args);
  } catch (const UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "mathrl: error: %s\n", e.what());
    record_fatal_error(e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "mathrl: error: %s\n", e.what());
    record_fatal_error(e.what());
    return 1;
  }
}

}  // namespace mathrl::cli
