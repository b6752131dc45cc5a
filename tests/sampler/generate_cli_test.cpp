// `mathrl generate` and `mathrl bench` as subprocesses: output format, greedy parity through the
// CLI, reproducible seeds, and a clear error (never a crash) for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"

using namespace mathrl;

namespace {

std::string tiny() { return test::fixture("sampler/tiny_llama"); }

std::vector<rapidjson::Document> lines_of(const std::string& out) {
  std::vector<rapidjson::Document> docs;
  for (const auto& l : split(out, '\n'))
    if (!l.empty()) docs.push_back(parse_json(l, "output"));
  return docs;
}

std::vector<int> ids_of(const rapidjson::Value& v) {
  std::vector<int> ids;
  for (const auto& x : v["ids"].GetArray()) ids.push_back(x.GetInt());
  return ids;
}

void expect_error(const std::vector<std::string>& args, const std::string& input, int code, const std::string& needle) {
  auto r = test::run_mathrl(args, input);
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

}  // namespace

TEST(GenerateCli, GreedyIdsMatchFixtureAndFormat) {
  auto r = test::run_mathrl({"generate", "--model", tiny(), "--greedy", "--max-new-tokens", "12", "--ignore-eos"},
                            "{\"ids\": [105]}\n\n{\"ids\": [116, 158, 23, 27, 211]}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto docs = lines_of(r.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(ids_of(docs[0]), (std::vector<int>{116, 68, 24, 24, 24, 24, 24, 24, 24, 11, 11, 11}));
  EXPECT_EQ(ids_of(docs[1]), (std::vector<int>{94, 45, 16, 155, 83, 105, 56, 144, 94, 7, 44, 57}));
  EXPECT_EQ(docs[1]["prompt_index"].GetInt(), 1);
  EXPECT_EQ(docs[1]["sample_index"].GetInt(), 0);
  EXPECT_STREQ(docs[1]["finish_reason"].GetString(), "length");
  EXPECT_EQ(docs[1]["logprobs"].Size(), 12u);
  EXPECT_EQ(docs[1]["prompt_tokens"].GetInt(), 5);
  EXPECT_EQ(docs[1]["completion_tokens"].GetInt(), 12);
}

TEST(GenerateCli, SeededSamplesReproduceAndDiffer) {
  std::vector<std::string> args = {"generate", "--model", tiny(), "--n", "3", "--max-new-tokens", "8", "--seed", "5",
                                   "--top-p", "0.9", "--temperature", "0.8"};
  std::string input = "{\"ids\": [7, 8, 9]}\n{\"ids\": [10]}\n";
  auto a = test::run_mathrl(args, input);
  auto b = test::run_mathrl(args, input);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  args.push_back("--max-batch");
  args.push_back("2");
  auto c = test::run_mathrl(args, input);  // other slot assignment, same tokens (logprobs to rounding)
  ASSERT_EQ(c.exit_code, 0) << c.err;
  auto docs = lines_of(a.out), docs_c = lines_of(c.out);
  ASSERT_EQ(docs_c.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(ids_of(docs[i]), ids_of(docs_c[i])) << "line " << i;
    for (rapidjson::SizeType t = 0; t < docs[i]["logprobs"].Size(); ++t)
      EXPECT_NEAR(docs[i]["logprobs"][t].GetDouble(), docs_c[i]["logprobs"][t].GetDouble(), 1e-4);
  }
  ASSERT_EQ(docs.size(), 6u);
  EXPECT_NE(ids_of(docs[0]), ids_of(docs[1]));
  args[7] = "6";
  auto d = test::run_mathrl(args, input);
  EXPECT_NE(a.out, d.out);
}

TEST(GenerateCli, TextPromptsAndStopStrings) {
  std::string gpt2 = test::shared_dir() + "/tokenizers/gpt2";
  if (!std::filesystem::exists(gpt2)) GTEST_SKIP();
  // GPT-2 ids below 256 decode to single characters; "#" is id 2.
  auto r = test::run_mathrl({"generate", "--model", tiny(), "--tokenizer", gpt2, "--n", "4", "--max-new-tokens", "40",
                             "--ignore-eos", "--stop", "5", "--stop", "e"},
                            "{\"prompt\": \"#\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto docs = lines_of(r.out);
  ASSERT_EQ(docs.size(), 4u);
  for (const auto& d : docs) {
    std::string text = d["text"].GetString();
    EXPECT_EQ(text.find('5'), std::string::npos) << text;
    EXPECT_EQ(text.find('e'), std::string::npos) << text;
    EXPECT_EQ(d["prompt_tokens"].GetInt(), 1);
  }
}

TEST(GenerateCli, BadInputIsAClearError) {
  std::vector<std::string> base = {"generate", "--model", tiny()};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_error(base, "{\"ids\": []}\n", 1, "<stdin>:1");
  expect_error(base, "{\"ids\": [1]}\n{\"ids\": [1, 256]}\n", 1, "outside the model's vocabulary");
  expect_error(base, "{\"ids\": [-4]}\n", 1, "outside the model's vocabulary");
  expect_error(base, "{\"ids\": [1.5]}\n", 1, "non-integer");
  std::string long_prompt = "{\"ids\": [";
  for (int i = 0; i < 128; ++i) long_prompt += (i ? ",7" : "7");
  expect_error(base, long_prompt + "]}\n", 1, "context");
  expect_error(base, "{\"ids\": [1]\n", 1, "invalid JSON");
  expect_error(base, "{\"text\": \"x\"}\n", 1, "\"prompt\"");
  expect_error(base, "{\"prompt\": \"hi\"}\n", 2, "tokenizer");
  std::string gpt2 = test::shared_dir() + "/tokenizers/gpt2";
  if (std::filesystem::exists(gpt2)) {
    expect_error(with({"--tokenizer", gpt2}), "{\"prompt\": \"\"}\n", 1, "empty");
    expect_error(with({"--tokenizer", gpt2}), "{\"prompt\": \"ab\xff\"}\n", 1, "UTF-8");
    expect_error(with({"--tokenizer", gpt2}), "{\"prompt\": \"hello world\"}\n", 1, "outside the model's vocabulary");
  }
  expect_error(with({"--n", "0"}), "{\"ids\": [1]}\n", 2, "--n");
  expect_error(with({"--max-new-tokens", "0"}), "{\"ids\": [1]}\n", 2, "--max-new-tokens");
  expect_error(with({"--temperature", "0"}), "{\"ids\": [1]}\n", 2, "temperature");
  expect_error(with({"--top-p", "1.5"}), "{\"ids\": [1]}\n", 2, "top_p");
  expect_error(with({"--device", "tpu"}), "{\"ids\": [1]}\n", 2, "--device");
  expect_error(with({"--dtype", "int3"}), "{\"ids\": [1]}\n", 2, "--dtype");
  expect_error(with({"--stop", "x"}), "{\"ids\": [1]}\n", 2, "tokenizer");
  expect_error({"generate", "--model", "/nonexistent/model"}, "{\"ids\": [1]}\n", 2, "/nonexistent/model");
  // No prompts at all: no output, success.
  auto r = test::run_mathrl(base, "");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(BenchCli, GenerateTinyRunsAndUnknownBenchmarkIsNamed) {
  test::TempDir tmp;
  auto r = test::run_mathrl({"bench", "generate", "--preset", "tiny", "--device", "cpu", "--prompts", "2", "--n", "2",
                             "--prompt-len", "8", "--max-new-tokens", "6", "--out", tmp.file("r.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto d = parse_json(r.out, "bench output");
  EXPECT_EQ(d["generated_tokens"].GetInt(), 24);
  EXPECT_GT(d["tokens_per_s"].GetDouble(), 0);
  EXPECT_GT(d["roofline_fraction"].GetDouble(), 0);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("r.json")));
  expect_error({"bench", "generat"}, "", 2, "did you mean 'generate'");
  expect_error({"bench", "generate", "--preset", "7b", "--device", "cpu"}, "", 2, "preset");
}
