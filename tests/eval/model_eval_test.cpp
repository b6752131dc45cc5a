// `mathrl eval` and mathrl.eval end to end on CPU, with a tiny model built so its answer is known:
// every layer is zero and every embedding the same vector, so the next-token logits are the same
// at every position: "7" (logit 32) just above "8" (31.9), everything else 0. Greedy answers "7";
// sampling at T = 0.7 gives "7" with p = 0.536 and "8" otherwise. Over a 5-problem GSM8K file
// whose golds are 7, 8, 7, 5, 7, every metric is checked against the generations file, recomputed
// here with plain loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/transformer.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

using namespace mathrl;

namespace {

const std::vector<std::string> kGolds = {"7", "8", "7", "5", "7"};

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path);
  for (const auto& l : lines) f << l << "\n";
}

std::string gsm8k_line(int i, const std::string& gold) {
  return str("{\"question\": \"Tom has ", i, " apples and buys some more. How many now?\", \"answer\": \"He has ", gold,
             ".\\n#### ", gold, "\"}");
}

// The model directory (config.json, model.safetensors, tokenizer.json) and a data directory with
// gsm8k/test.jsonl (5 problems) and gsm8k/train.jsonl (8 exemplars).
class EvalFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir = dir.file("model");
    data_dir = dir.file("data");
    std::filesystem::create_directories(model_dir);
    std::filesystem::copy_file(test::fixture("tokenizer/synth_bytelevel.json"), model_dir + "/tokenizer.json");
    auto tok = load_tokenizer(model_dir);
    int32_t seven = tok->token_to_id("7"), eight = tok->token_to_id("8");
    ASSERT_GE(seven, 0);
    ASSERT_GE(eight, 0);
    auto config = model::parse_config(
        "{\"model_type\": \"llama\", \"vocab_size\": 640, \"hidden_size\": 32, \"intermediate_size\": 64,"
        " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
        " \"max_position_embeddings\": 4096, \"bos_token_id\": 0, \"eos_token_id\": 1, \"rms_norm_eps\": 1e-6}",
        "test");
    model::Decoder d = model::random_decoder(config, 1);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : d->named_parameters()) {
        const std::string& name = p.key();
        if (name.find("norm") != std::string::npos || name.find("embed_tokens") != std::string::npos) p.value().fill_(1.0);
        else p.value().zero_();
        if (name == "lm_head.weight") {
          p.value()[seven].fill_(1.0);
          p.value()[eight].fill_(31.9 / 32.0);
        }
      }
    }
    model::save_decoder(d, model_dir);
    std::vector<std::string> test_lines, train_lines;
    for (size_t i = 0; i < kGolds.size(); ++i) test_lines.push_back(gsm8k_line(static_cast<int>(i), kGolds[i]));
    for (int i = 0; i < 8; ++i) train_lines.push_back(gsm8k_line(100 + i, std::to_string(i + 3)));
    write_lines(data_dir + "/gsm8k/test.jsonl", test_lines);
    write_lines(data_dir + "/gsm8k/train.jsonl", train_lines);
  }

  std::vector<std::string> base_args(const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {"eval", "--model", model_dir, "--bench", "gsm8k", "--data-dir", data_dir,
                                  "--max-new-tokens", "1", "--device", "cpu"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  test::TempDir dir;
  std::string model_dir, data_dir;
};

struct Generation {
  size_t problem = 0;
  int sample = 0;
  std::string completion, gold;
  std::optional<std::string> answer;
  bool correct = false;
};

// The complete lines of a generations file (a line cut by an interruption is counted apart).
std::vector<Generation> read_generations(const std::string& path, int* cut_lines = nullptr) {
  std::vector<Generation> out;
  if (cut_lines) *cut_lines = 0;
  for (const auto& line : split(read_file(path), '\n')) {
    if (line.empty()) continue;
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (d.HasParseError()) {
      if (cut_lines) ++*cut_lines;
      continue;
    }
    Generation g;
    g.problem = d["problem"].GetUint64();
    g.sample = d["sample"].GetInt();
    g.completion = d["completion"].GetString();
    g.gold = d["gold"].GetString();
    if (d["answer"].IsString()) g.answer = d["answer"].GetString();
    g.correct = d["correct"].GetBool();
    out.push_back(std::move(g));
  }
  return out;
}

rapidjson::Document read_json(const std::string& path) { return parse_json(read_file(path), path); }

double choose(int n, int k) {
  double r = 1;
  for (int i = 0; i < k; ++i) r = r * (n - i) / (i + 1);
  return r;
}

void expect_error(const std::vector<std::string>& args, int code, const std::vector<std::string>& needles) {
  auto r = test::run_mathrl(args);
  EXPECT_EQ(r.exit_code, code) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

}  // namespace

TEST_F(EvalFixture, GreedyWritesThreeConsistentFiles) {
  std::string out = dir.file("out");
  auto r = test::run_mathrl(base_args({"--style", "zeroshot", "--out", out}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| gsm8k | 5 | 1 | 60.0"), std::string::npos) << r.out;
  auto gens = read_generations(out + "/gsm8k.generations.jsonl");
  ASSERT_EQ(gens.size(), 5u);
  int correct = 0;
  for (size_t i = 0; i < gens.size(); ++i) {
    EXPECT_EQ(gens[i].problem, i);
    EXPECT_EQ(gens[i].sample, 0);
    EXPECT_EQ(gens[i].completion, "7");
    ASSERT_TRUE(gens[i].answer);
    EXPECT_EQ(*gens[i].answer, "7");
    EXPECT_EQ(gens[i].gold, kGolds[i]);
    EXPECT_EQ(gens[i].correct, kGolds[i] == "7");
    correct += gens[i].correct;
  }
  auto s = read_json(out + "/summary.json");
  const auto& overall = s["results"][0]["overall"];
  EXPECT_EQ(overall["problems"].GetInt(), 5);
  EXPECT_NEAR(overall["accuracy"]["mean"].GetDouble(), correct / 5.0, 1e-6);
  EXPECT_NEAR(overall["pass_at"]["1"]["mean"].GetDouble(), correct / 5.0, 1e-6);
  EXPECT_GE(overall["accuracy"]["low"].GetDouble(), 0.0);
  EXPECT_LE(overall["accuracy"]["high"].GetDouble(), 1.0);
  EXPECT_EQ(s["generation"][0]["completions"].GetInt(), 5);
  EXPECT_EQ(s["generation"][0]["generated_tokens"].GetInt(), 5);
  EXPECT_STREQ(s["settings"]["style"].GetString(), "zeroshot");
  std::string md = read_file(out + "/summary.md");
  EXPECT_NE(md.find("| gsm8k | 5 | 1 | 60.0"), std::string::npos) << md;
}

TEST_F(EvalFixture, SampledPassAndMajMatchTheGenerations) {
  std::string out = dir.file("out");
  auto r = test::run_mathrl(base_args({"--style", "zeroshot", "--samples", "4", "--k", "1,2,4", "--seed", "3", "--out", out}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto gens = read_generations(out + "/gsm8k.generations.jsonl");
  ASSERT_EQ(gens.size(), 20u);
  std::map<size_t, std::vector<const Generation*>> by_problem;
  std::set<std::string> answers;
  for (const auto& g : gens) {
    by_problem[g.problem].push_back(&g);
    ASSERT_TRUE(g.answer);
    answers.insert(*g.answer);
    EXPECT_EQ(g.correct, *g.answer == g.gold);
  }
  EXPECT_EQ(answers, (std::set<std::string>{"7", "8"}));  // sampling did vary
  ASSERT_EQ(by_problem.size(), 5u);
  auto s = read_json(out + "/summary.json");
  const auto& overall = s["results"][0]["overall"];
  for (int k : {1, 2, 4}) {
    double pass = 0, maj = 0, acc = 0;
    for (auto& [p, samples] : by_problem) {
      ASSERT_EQ(samples.size(), 4u);
      std::sort(samples.begin(), samples.end(), [](auto* a, auto* b) { return a->sample < b->sample; });
      int c = 0, sevens = 0, eights = 0;
      for (auto* g : samples) c += g->correct;
      for (int j = 0; j < k; ++j) (*samples[j]->answer == "7" ? sevens : eights)++;
      acc += c / 4.0;
      pass += 1.0 - choose(4 - c, k) / choose(4, k);
      const std::string& gold = samples[0]->gold;
      double win7 = sevens > eights ? 1 : sevens == eights ? 0.5 : 0;
      maj += gold == "7" ? win7 : gold == "8" ? 1 - win7 : 0;
    }
    std::string key = std::to_string(k);
    EXPECT_NEAR(overall["pass_at"][key.c_str()]["mean"].GetDouble(), pass / 5, 1e-6) << "k=" << k;
    EXPECT_NEAR(overall["maj_at"][key.c_str()]["mean"].GetDouble(), maj / 5, 1e-6) << "k=" << k;
    EXPECT_NEAR(overall["accuracy"]["mean"].GetDouble(), acc / 5, 1e-6);
  }
}

TEST_F(EvalFixture, SamplesDoNotDependOnBatchOrChunks) {
  std::string a = dir.file("a"), b = dir.file("b");
  ASSERT_EQ(test::run_mathrl(base_args({"--style", "zeroshot", "--samples", "3", "--batch", "1", "--out", a})).exit_code, 0);
  ASSERT_EQ(test::run_mathrl(base_args({"--style", "zeroshot", "--samples", "3", "--batch", "16", "--chunk", "2", "--out", b}))
                .exit_code,
            0);
  // Problems are written as they finish, so the order may differ; the lines may not.
  auto lines = [](const std::string& path) {
    auto v = split(read_file(path), '\n');
    std::sort(v.begin(), v.end());
    return v;
  };
  auto la = lines(a + "/gsm8k.generations.jsonl");
  EXPECT_EQ(la.size(), 16u);  // 15 lines and the empty string after the last newline
  EXPECT_EQ(la, lines(b + "/gsm8k.generations.jsonl"));
}

TEST_F(EvalFixture, ResumeFinishesOnlyTheMissingProblems) {
  std::string out = dir.file("out");
  ASSERT_EQ(test::run_mathrl(base_args({"--style", "zeroshot", "--out", out})).exit_code, 0);
  std::string gen_path = out + "/gsm8k.generations.jsonl";
  std::string full = read_file(gen_path);
  // Keep two whole lines and half of the third, as a killed run leaves it.
  size_t second_end = full.find('\n', full.find('\n') + 1);
  std::string truncated = full.substr(0, second_end + 1 + 20);
  { std::ofstream(gen_path) << truncated; }
  std::filesystem::remove(out + "/summary.json");
  std::filesystem::remove(out + "/summary.md");

  auto r = test::run_mathrl(base_args({"--style", "zeroshot", "--out", out}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int cut = 0;
  auto gens = read_generations(gen_path, &cut);
  EXPECT_EQ(cut, 1);
  ASSERT_EQ(gens.size(), 5u);
  std::set<size_t> problems;
  for (const auto& g : gens) problems.insert(g.problem);
  EXPECT_EQ(problems, (std::set<size_t>{0, 1, 2, 3, 4}));
  auto s = read_json(out + "/summary.json");
  EXPECT_EQ(s["results"][0]["resumed_problems"].GetInt(), 2);
  EXPECT_EQ(s["generation"][0]["completions"].GetInt(), 3);
  EXPECT_EQ(s["results"][0]["overall"]["problems"].GetInt(), 5);
  EXPECT_NEAR(s["results"][0]["overall"]["accuracy"]["mean"].GetDouble(), 0.6, 1e-6);
  EXPECT_TRUE(std::filesystem::exists(out + "/summary.md"));

  // The same directory with other settings would mix two evaluations: refused.
  expect_error(base_args({"--style", "zeroshot", "--samples", "2", "--out", out}), 2, {"other settings"});
}

TEST_F(EvalFixture, FewShotIsTheBaseModelDefault) {
  std::string few = dir.file("few"), zero = dir.file("zero");
  ASSERT_EQ(test::run_mathrl(base_args({"--out", few})).exit_code, 0);
  ASSERT_EQ(test::run_mathrl(base_args({"--instruct", "--out", zero})).exit_code, 0);
  auto f = read_json(few + "/summary.json"), z = read_json(zero + "/summary.json");
  EXPECT_STREQ(f["settings"]["style"].GetString(), "fewshot");
  EXPECT_STREQ(z["settings"]["style"].GetString(), "zeroshot");
  // Eight exemplars in front of each question.
  EXPECT_GT(f["generation"][0]["prompt_tokens"].GetInt(), 6 * z["generation"][0]["prompt_tokens"].GetInt());
  EXPECT_NEAR(f["results"][0]["overall"]["accuracy"]["mean"].GetDouble(), 0.6, 1e-6);
}

TEST_F(EvalFixture, BadInputFailsBeforeLoadingTheModel) {
  expect_error(base_args({"--bench", "gsm9k"}), 2, {"unknown benchmark 'gsm9k'", "did you mean 'gsm8k'", "known: gsm8k, math", "gaokao_qa"});
  expect_error(base_args({"--bench", "math500"}), 2, {"math500", "no file", data_dir + "/math500/test.jsonl"});
  expect_error(base_args({"--samples", "0"}), 2, {"--samples must be >= 1"});
  expect_error(base_args({"--samples", "4", "--k", "1,8"}), 2, {"--k 8 is larger than --samples 4"});
  expect_error(base_args({"--k", "2"}), 2, {"larger than --samples 1"});
  expect_error(base_args({"--style", "fewshots"}), 2, {"expected auto, fewshot or zeroshot"});
  expect_error(base_args({"--bench", "gsm8k,math", "--path", data_dir + "/gsm8k/test.jsonl"}), 2, {"exactly one benchmark"});
  expect_error({"eval", "--model", dir.file("nothing"), "--bench", "gsm8k", "--data-dir", data_dir}, 2, {"no config.json"});
  write_lines(data_dir + "/bad.jsonl", {gsm8k_line(0, "1"), "{\"question\": \"no answer\"}"});
  expect_error(base_args({"--path", data_dir + "/bad.jsonl"}), 1, {"bad.jsonl:2", "answer"});
}

TEST_F(EvalFixture, LuaModuleRunsAndReturnsMetrics) {
  std::string out = dir.file("lua-out");
  std::string recipe = dir.file("eval_recipe.lua");
  write_lines(recipe, {str("local MODEL, DATA, OUT = '", model_dir, "', '", data_dir, "', '", out, "'"), R"LUA(
return mathrl.script { name = "evaltest", main = function(run)
  local r = mathrl.eval.run{model = MODEL, bench = "gsm8k", data_dir = DATA, style = "zeroshot", max_new_tokens = 1,
                            progress = false}
  local g = r.gsm8k
  assert(g.problems == 5, "problems " .. tostring(g.problems))
  assert(math.abs(g.accuracy - 0.6) < 1e-9, "accuracy " .. g.accuracy)
  assert(g.pass[1] == g.accuracy and g.samples == 1)
  assert(g.generated_tokens == 5 and g.seconds >= 0 and g.resumed_problems == 0)
  -- a model and a tokenizer object, and a template of our own
  local m = mathrl.model.load(MODEL)
  local tok = mathrl.tokenizer.load(MODEL)
  local seen = 0
  local r2 = mathrl.eval.run{model = m, tokenizer = tok, bench = {"gsm8k"}, data_dir = DATA, limit = 3, samples = 4,
    k = {1, 4}, temperature = 0.7, max_new_tokens = 1, progress = false, out = OUT, seed = 3,
    prompt = function(p) seen = seen + 1; return "Q: " .. p.question .. "\nA:" end}
  assert(seen == 3, "prompt calls " .. seen)
  local s = r2.gsm8k
  assert(s.problems == 3 and s.samples == 4)
  assert(s.pass[2] == nil and s.pass[4] >= s.pass[1] and s.maj[4] ~= nil)
  print(string.format("RESULT %.9f %.9f %.9f", s.accuracy, s.pass[4], s.maj[4]))
  assert(mathrl.eval.pass_at_k(4, 1, 4) == 1)
  assert(math.abs(mathrl.eval.pass_at_k(10, 3, 2) - (1 - 21 / 45)) < 1e-12)
  local ok, pred, gold = mathrl.eval.grade("so the answer is \\boxed{12}", "12")
  assert(ok and pred == "12" and gold == "12", tostring(pred))
  assert(not mathrl.eval.grade("The answer is 3.", "4"))
  local okc, err = pcall(mathrl.eval.run, {model = MODEL, bench = "gsm9k", data_dir = DATA})
  assert(not okc and err:find("known: gsm8k"), err)
  okc, err = pcall(mathrl.eval.run, {model = MODEL, bench = "gsm8k", limt = 3})
  assert(not okc and err:find("did you mean 'limit'"), err)
  okc, err = pcall(mathrl.eval.run, {model = m, bench = "gsm8k", data_dir = DATA})
  assert(not okc and err:find("tokenizer"), err)
  okc, err = pcall(mathrl.eval.pass_at_k, 3, 4, 1)
  assert(not okc and err:find("bad argument #2 to 'mathrl.eval.pass_at_k'"), err)
end }
)LUA"});
  auto r = test::run_mathrl({"run", recipe, "--out", dir.file("run")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  size_t at = r.out.find("RESULT ");
  ASSERT_NE(at, std::string::npos) << r.out;
  double acc = 0, pass4 = 0, maj4 = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + at, "RESULT %lf %lf %lf", &acc, &pass4, &maj4), 3);
  // Recomputed from the generations the Lua run wrote.
  auto gens = read_generations(out + "/gsm8k.generations.jsonl");
  ASSERT_EQ(gens.size(), 12u);
  std::map<size_t, std::vector<const Generation*>> by_problem;
  for (const auto& g : gens) by_problem[g.problem].push_back(&g);
  double want_acc = 0, want_pass = 0, want_maj = 0;
  for (auto& [p, samples] : by_problem) {
    int c = 0, sevens = 0;
    for (auto* g : samples) {
      c += g->correct;
      sevens += *g->answer == "7";
    }
    int eights = 4 - sevens;
    want_acc += c / 4.0;
    want_pass += c > 0;
    double win7 = sevens > eights ? 1 : sevens == eights ? 0.5 : 0;
    want_maj += kGolds[p] == "7" ? win7 : kGolds[p] == "8" ? 1 - win7 : 0;
  }
  EXPECT_NEAR(acc, want_acc / 3, 1e-9);
  EXPECT_NEAR(pass4, want_pass / 3, 1e-9);
  EXPECT_NEAR(maj4, want_maj / 3, 1e-9);
}
