// Parity with the reference Python libraries on the real tokenizer files in ../shared/tokenizers
// (fixtures from scripts/gen_tokenizer_fixtures.py), plus loader and helper behaviour.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <thread>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace mathrl {
namespace {

std::string tokenizer_path(const std::string& name) {
  // Small tokenizers built by the fixture script to cover features the shared files do not use.
  if (name.rfind("synth_", 0) == 0) return test::fixture("tokenizer/" + name + ".json");
  std::string dir = test::shared_dir() + "/tokenizers/" + name;
  if (name == "llama2") return dir + "/tokenizer.model";
  return dir;
}

// Each tokenizer is loaded once per process (qwen3's json is 11 MB).
const Tokenizer& get(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) slot = load_tokenizer(tokenizer_path(name));
  return *slot;
}

std::vector<int32_t> ints(const rapidjson::Value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.GetArray()) out.push_back(x.GetInt());
  return out;
}

std::string json_str(const rapidjson::Value& v) { return std::string(v.GetString(), v.GetStringLength()); }

std::vector<int32_t> unvarint_b64(const std::string& b64) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    if (c == '=') break;
    acc = (acc << 6) | uint32_t(chars.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(char((acc >> bits) & 0xFF));
    }
  }
  std::vector<int32_t> ids;
  uint32_t v = 0;
  int shift = 0;
  for (unsigned char b : bytes) {
    v |= uint32_t(b & 0x7F) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      ids.push_back(int32_t(v));
      v = 0;
      shift = 0;
    }
  }
  return ids;
}

std::string show(const std::string& s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

void check_cases(const std::string& name) {
  const Tokenizer& tok = get(name);
  LineReader in(test::fixture("tokenizer/cases_" + name + ".jsonl"));
  std::string line;
  int rows = 0;
  while (in.next(line)) {
    auto doc = parse_json(line, in.name());
    auto ids = ints(doc["ids"]);
    if (doc.HasMember("prefix_of")) {
      EXPECT_EQ(tok.decode(ids), json_str(doc["decoded"])) << name << " decode of a prefix of " << show(json_str(doc["prefix_of"]));
      continue;
    }
    std::string text = json_str(doc["text"]);
    ++rows;
    EXPECT_EQ(tok.encode(text), ids) << name << " encode " << show(text);
    EXPECT_EQ(tok.encode(text, true), ints(doc["ids_special"])) << name << " encode+special " << show(text);
    EXPECT_EQ(tok.decode(ids), json_str(doc["decoded"])) << name << " decode " << show(text);
    EXPECT_EQ(tok.decode(ints(doc["ids_special"]), true), json_str(doc["decoded_skip"]))
        << name << " decode skipping specials " << show(text);
  }
  EXPECT_GT(rows, 30);
}

// ~200 GSM8K/MATH records from ../shared/data, ids compared one for one.
void check_bulk(const std::string& name) {
  const Tokenizer& tok = get(name);
  std::map<std::string, std::vector<std::string>> files;
  LineReader in(test::fixture("tokenizer/bulk_" + name + ".jsonl"));
  std::string line;
  int rows = 0;
  size_t total_ids = 0;
  while (in.next(line)) {
    auto doc = parse_json(line, in.name());
    std::string file = json_str(doc["file"]);
    auto& lines = files[file];
    if (lines.empty()) {
      for (auto& l : split(read_file(test::shared_dir() + "/data/" + file), '\n'))
        if (!trim(l).empty()) lines.push_back(l);
    }
    size_t n = doc["line"].GetUint();
    ASSERT_LT(n, lines.size());
    auto rec = parse_json(lines[n], file);
    std::string text;
    for (const auto& f : doc["fields"].GetArray()) {
      if (!text.empty()) text += "\n";
      text += json_str(rec[f.GetString()]);
    }
    auto expected = unvarint_b64(json_str(doc["ids"]));
    ASSERT_EQ(expected.size(), doc["count"].GetUint());
    auto got = tok.encode(text);
    EXPECT_EQ(got, expected) << name << " " << file << " line " << n;
    EXPECT_EQ(tok.decode(got), name == "llama2" ? tok.decode(expected) : text);
    ++rows;
    total_ids += expected.size();
  }
  EXPECT_EQ(rows, 200);
  EXPECT_GT(total_ids, 20000u);
}

TEST(TokenizerParity, Qwen3Cases) { check_cases("qwen3"); }
TEST(TokenizerParity, Qwen3Bulk) { check_bulk("qwen3"); }
TEST(TokenizerParity, DeepseekV3Cases) { check_cases("deepseek_v3"); }
TEST(TokenizerParity, DeepseekV3Bulk) { check_bulk("deepseek_v3"); }
TEST(TokenizerParity, Gpt2Cases) { check_cases("gpt2"); }
TEST(TokenizerParity, Gpt2Bulk) { check_bulk("gpt2"); }
TEST(TokenizerParity, Llama2Cases) { check_cases("llama2"); }
TEST(TokenizerParity, Llama2Bulk) { check_bulk("llama2"); }
// NFKC+Lowercase, Split behaviours, ByteLevel prefix space + regex, TemplateProcessing, lstrip/rstrip/
// single_word/normalized added tokens, "a b" merges.
TEST(TokenizerParity, SynthByteLevelCases) { check_cases("synth_bytelevel"); }
// Char-level BPE with byte_fallback, unk, ignore_merges, inverted/Contiguous/MergedWithNext splits,
// BertProcessing, NFD, no decoder.
TEST(TokenizerParity, SynthFallbackCases) { check_cases("synth_fallback"); }
// The same model behind Punctuation (Contiguous) and Digits (individual_digits) pre-tokenizers.
TEST(TokenizerParity, SynthDigitsCases) { check_cases("synth_digits"); }

TEST(Tokenizer, ConcurrentEncodeMatchesSerial) {
  const Tokenizer& tok = get("qwen3");
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back("Problem " + std::to_string(i * 7919) + ": compute $x^{" + std::to_string(i) + "}$ \\cdot  y\n");
  std::vector<std::vector<int32_t>> serial;
  for (auto& t : texts) serial.push_back(tok.encode(t));
  std::vector<std::vector<int32_t>> a(texts.size()), b(texts.size());
  std::thread t1([&] { for (size_t i = 0; i < texts.size(); ++i) a[i] = tok.encode(texts[i]); });
  std::thread t2([&] { for (size_t i = texts.size(); i-- > 0;) b[i] = tok.encode(texts[i]); });
  t1.join();
  t2.join();
  EXPECT_EQ(a, serial);
  EXPECT_EQ(b, serial);
}

TEST(Tokenizer, SpecialIdsAndVocab) {
  const Tokenizer& qwen = get("qwen3");
  EXPECT_EQ(qwen.kind(), "hf-bpe");
  EXPECT_EQ(qwen.vocab_size(), 151669u);
  EXPECT_EQ(qwen.bos_id(), -1);
  EXPECT_EQ(qwen.eos_id(), qwen.token_to_id("<|im_end|>"));
  EXPECT_EQ(qwen.pad_id(), 151643);
  EXPECT_EQ(qwen.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen.id_to_token(151644), "<|im_start|>");
  EXPECT_TRUE(qwen.is_special(151644));
  EXPECT_FALSE(qwen.is_special(151667));  // <think> is added but not special
  EXPECT_EQ(qwen.special_ids().size(), 14u);  // tokenizer.json marks 14 of the 26 added tokens special
  EXPECT_EQ(qwen.token_to_id("no-such-token"), -1);
  EXPECT_EQ(qwen.id_to_token(-5), "");

  const Tokenizer& ds = get("deepseek_v3");
  EXPECT_EQ(ds.bos_id(), 0);
  EXPECT_EQ(ds.eos_id(), 1);
  const Tokenizer& gpt2 = get("gpt2");
  EXPECT_EQ(gpt2.kind(), "gpt2");
  EXPECT_EQ(gpt2.vocab_size(), 50257u);
  EXPECT_EQ(gpt2.eos_id(), 50256);
  const Tokenizer& llama = get("llama2");
  EXPECT_EQ(llama.kind(), "sentencepiece");
  EXPECT_EQ(llama.vocab_size(), 32000u);
  EXPECT_EQ(llama.bos_id(), 1);
  EXPECT_EQ(llama.eos_id(), 2);
  EXPECT_EQ(llama.token_to_id("<s>"), 1);
  EXPECT_EQ(llama.token_to_id("definitely-not-a-piece"), -1);
  EXPECT_EQ(llama.encode("hi", true).front(), 1);
}

TEST(Tokenizer, OutOfRangeIdsAreSkippedOnDecode) {
  const Tokenizer& gpt2 = get("gpt2");
  auto ids = gpt2.encode("hello");
  std::vector<int32_t> with_bad = ids;
  with_bad.push_back(1 << 30);
  with_bad.insert(with_bad.begin(), -3);
  EXPECT_EQ(gpt2.decode(with_bad), "hello");
  EXPECT_FALSE(gpt2.is_valid_id(50257));
}

TEST(Tokenizer, InvalidUtf8IsADataError) {
  EXPECT_THROW(get("gpt2").encode(std::string("ab\xff")), DataError);
  EXPECT_THROW(get("llama2").encode(std::string("\xc3")), DataError);
}

TEST(TokenizerLoader, AcceptsFilesAndDirectories) {
  std::string dir = test::shared_dir() + "/tokenizers/";
  EXPECT_EQ(load_tokenizer(dir + "llama2")->kind(), "sentencepiece");
  EXPECT_EQ(load_tokenizer(dir + "gpt2/")->kind(), "gpt2");
  EXPECT_EQ(load_tokenizer(dir + "gpt2/vocab.bpe")->kind(), "gpt2");
  EXPECT_EQ(load_tokenizer(dir + "deepseek_v3/tokenizer.json")->kind(), "hf-bpe");
}

TEST(TokenizerLoader, ClearErrors) {
  test::TempDir tmp;
  EXPECT_THROW(load_tokenizer(tmp.file("missing.json")), UsageError);
  EXPECT_THROW(load_tokenizer(tmp.path()), UsageError);  // empty directory
  write_file_atomic(tmp.file("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": ");
  try {
    load_tokenizer(tmp.path());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  write_file_atomic(tmp.file("tokenizer.json"),
                    R"({"model": {"type": "WordPiece", "vocab": {}}, "normalizer": null})");
  EXPECT_THROW(load_tokenizer(tmp.path()), UsageError);
  write_file_atomic(tmp.file("tokenizer.json"), R"({"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}})");
  EXPECT_THROW(load_tokenizer(tmp.path()), DataError);
  write_file_atomic(tmp.file("tokenizer.json"), R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})");
  EXPECT_THROW(load_tokenizer(tmp.path()), DataError);  // merge uses a token missing from the vocab
  write_file_atomic(tmp.file("x.model"), "not a model");
  EXPECT_THROW(load_tokenizer(tmp.file("x.model")), DataError);
}

TEST(Utf8Lossy, MaximalSubpartsBecomeOneReplacement) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xE4\xBD"), r);              // truncated 3-byte sequence
  EXPECT_EQ(utf8_lossy("\xE4\xBDx"), r + "x");
  EXPECT_EQ(utf8_lossy("\x80\x80"), r + r);          // stray continuation bytes
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);  // surrogate: E0-ED range check fails at byte 2
  EXPECT_EQ(utf8_lossy("\xF0\x9F\xA7"), r);
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), r + r);          // overlong lead byte
  EXPECT_EQ(utf8_lossy("\xF0\x9F\xA7\xAE"), "\xF0\x9F\xA7\xAE");
}

}  // namespace
}  // namespace mathrl
