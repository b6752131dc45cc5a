// `mathrl tokenize` end to end (runs the built binary): ids match the reference fixtures, decode
// inverts encode, and bad input lines are clear errors naming the line.
#include <gtest/gtest.h>

#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"

namespace mathrl {
namespace {

std::string tok_dir(const std::string& name) { return test::shared_dir() + "/tokenizers/" + name; }

std::string ids_json(const rapidjson::Value& ids) {
  std::string out = "{\"ids\":[";
  for (rapidjson::SizeType k = 0; k < ids.Size(); ++k) out += (k ? "," : "") + std::to_string(ids[k].GetInt());
  return out + "]}\n";
}

// The fixture texts as JSONL input, and the expected output built from the reference ids.
void fixture_io(const std::string& name, std::string& input, std::string& expected, std::string& ids_input,
                std::string& decoded) {
  LineReader in(test::fixture("tokenizer/cases_" + name + ".jsonl"));
  std::string line;
  while (in.next(line)) {
    auto doc = parse_json(line, in.name());
    if (!doc.HasMember("text")) continue;
    input += "{\"text\": ";
    append_json_string(input, std::string(doc["text"].GetString(), doc["text"].GetStringLength()));
    input += "}\n";
    expected += ids_json(doc["ids"]);
    ids_input += ids_json(doc["ids"]);
    decoded += "{\"text\":";
    append_json_string(decoded, std::string(doc["decoded"].GetString(), doc["decoded"].GetStringLength()));
    decoded += "}\n";
  }
}

TEST(TokenizeCli, EncodesAndDecodesLikeTheReference) {
  for (std::string name : {"qwen3", "llama2"}) {
    std::string input, expected, ids_input, decoded;
    fixture_io(name, input, expected, ids_input, decoded);
    auto r = test::run_mathrl({"tokenize", "--tokenizer", tok_dir(name)}, input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected) << name;
    r = test::run_mathrl({"tokenize", "--decode", "--tokenizer", tok_dir(name)}, ids_input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, decoded) << name;
  }
}

TEST(TokenizeCli, RawLinesFileArgumentAndSpecials) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("in.txt"), "hello world\n\n<|im_start|>user\n");
  auto r = test::run_mathrl({"tokenize", "--raw", "--tokenizer", tok_dir("qwen3"), tmp.file("in.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[14990,1879]}\n{\"ids\":[]}\n{\"ids\":[151644,872]}\n");

  r = test::run_mathrl({"tokenize", "--add-special", "--tokenizer", tok_dir("llama2")}, "{\"text\": \"hi\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"ids\":[1,", 0), 0u) << r.out;
  r = test::run_mathrl({"tokenize", "--tokenizer", tok_dir("llama2")}, "{\"text\": \"hi\"}\n");
  EXPECT_EQ(r.out.find("[1,"), std::string::npos) << r.out;

  r = test::run_mathrl({"tokenize", "--decode", "--skip-special", "--tokenizer", tok_dir("qwen3")},
                       "{\"ids\": [151644, 872, 151645]}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"text\":\"user\"}\n");
}

void expect_line_error(const std::vector<std::string>& args, const std::string& input, const std::string& needle) {
  auto r = test::run_mathrl(args, input);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

TEST(TokenizeCli, BadLinesAreErrorsNamingTheLine) {
  std::vector<std::string> enc = {"tokenize", "--tokenizer", tok_dir("gpt2")};
  expect_line_error(enc, "{\"text\": \"ok\"}\n{\"text\": \n", "<stdin>:2: invalid JSON");
  expect_line_error(enc, "{\"text\": \"ok\"}\n{\"txt\": \"x\"}\n", "<stdin>:2: expected an object with a string field 'text'");
  expect_line_error(enc, "[1, 2]\n", "<stdin>:1:");
  expect_line_error(enc, std::string("{\"text\": \"a\xff\"}\n"), "<stdin>:1: text is not valid UTF-8");
  std::vector<std::string> raw = {"tokenize", "--raw", "--tokenizer", tok_dir("gpt2")};
  expect_line_error(raw, std::string("fine\nbad \xc3\n"), "<stdin>:2: text is not valid UTF-8");
  std::vector<std::string> dec = {"tokenize", "--decode", "--tokenizer", tok_dir("gpt2")};
  expect_line_error(dec, "{\"ids\": [1, 2]}\n{\"ids\": [50257]}\n", "<stdin>:2: id 50257 out of range [0, 50257)");
  expect_line_error(dec, "{\"ids\": [-1]}\n", "<stdin>:1: id -1 out of range");
  expect_line_error(dec, "{\"ids\": [1.5]}\n", "<stdin>:1: 'ids' holds a non-integer value");
  expect_line_error(dec, "{\"ids\": \"1 2\"}\n", "<stdin>:1: expected an object with an array field 'ids'");
}

TEST(TokenizeCli, UsageErrorsExitTwo) {
  auto r = test::run_mathrl({"tokenize"}, "");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--tokenizer is required"), std::string::npos) << r.err;
  r = test::run_mathrl({"tokenize", "--tokenizer", "/no/such/tokenizer.json"}, "");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/no/such/tokenizer.json"), std::string::npos) << r.err;
  r = test::run_mathrl({"tokenize", "--decode", "--add-special", "--tokenizer", tok_dir("gpt2")}, "");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace mathrl
