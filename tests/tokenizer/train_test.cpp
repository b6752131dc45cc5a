// Training a tiny SentencePiece BPE vocabulary on a few KB of GSM8K text.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace mathrl {
namespace {

std::vector<std::string> gsm8k_lines(size_t max_bytes) {
  std::vector<std::string> out;
  LineReader in(test::shared_dir() + "/data/gsm8k/train.jsonl");
  std::string line;
  size_t bytes = 0;
  while (bytes < max_bytes && in.next(line)) {
    auto doc = parse_json(line, in.name());
    for (const char* f : {"question", "answer"}) {
      std::string text = doc[f].GetString();
      size_t start = 0;
      while (start <= text.size()) {  // one sentence per line, as sentencepiece expects
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        if (nl > start) out.push_back(text.substr(start, nl - start)), bytes += nl - start;
        start = nl + 1;
      }
    }
  }
  return out;
}

TEST(TrainSentencePiece, TinyBpeVocabRoundTrips) {
  test::TempDir tmp;
  auto lines = gsm8k_lines(12000);
  std::string corpus;
  for (auto& l : lines) corpus += l + "\n";
  write_file_atomic(tmp.file("corpus.txt"), corpus);

  TrainOptions o;
  o.input_files = {tmp.file("corpus.txt")};
  o.model_prefix = tmp.file("m");
  o.vocab_size = 500;
  o.user_defined_symbols = {"####", "<<", ">>"};
  std::string model = train_sentencepiece(o);
  ASSERT_TRUE(std::filesystem::exists(model));
  auto tok = load_tokenizer(model);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_LE(tok->vocab_size(), 500u);
  EXPECT_GT(tok->vocab_size(), 300u);

  for (const auto& l : lines) ASSERT_EQ(tok->decode(tok->encode(l)), l);
  // Unseen characters go through byte fallback and still round-trip.
  std::string unseen = "答案是 72 ✓, 3.5 × 4 = 14  (double  space)";
  EXPECT_EQ(tok->decode(tok->encode(unseen)), unseen);

  // split_digits: no piece holds more than one digit.
  for (int32_t id : tok->encode("In 2024 she paid $12345.67 for 890 apples")) {
    std::string piece = tok->id_to_token(id);
    EXPECT_LE(std::count_if(piece.begin(), piece.end(), [](char c) { return c >= '0' && c <= '9'; }), 1) << piece;
  }
  // User-defined symbols are single tokens, recognized in text.
  int32_t hashes = tok->token_to_id("####");
  ASSERT_GE(hashes, 0);
  auto ids = tok->encode("#### 72");
  EXPECT_NE(std::find(ids.begin(), ids.end(), hashes), ids.end());
}

TEST(TrainSentencePiece, InMemorySentencesAndOptionErrors) {
  test::TempDir tmp;
  TrainOptions o;
  o.sentences = gsm8k_lines(6000);
  o.model_prefix = tmp.file("mem");
  o.vocab_size = 400;
  o.split_digits = false;
  auto tok = load_tokenizer(train_sentencepiece(o));
  EXPECT_EQ(tok->decode(tok->encode(o.sentences[0])), o.sentences[0]);

  TrainOptions bad = o;
  bad.model_type = "bep";
  try {
    train_sentencepiece(bad);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'bpe'"), std::string::npos) << e.what();
  }
  bad = o;
  bad.model_prefix = "";
  EXPECT_THROW(train_sentencepiece(bad), UsageError);
  bad = o;
  bad.sentences.clear();
  EXPECT_THROW(train_sentencepiece(bad), UsageError);
}

}  // namespace
}  // namespace mathrl
