#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "byte_tokenizer.h"
#include "common/error.h"
#include "data/jsonl_source.h"
#include "data/mixed_stream.h"
#include "data/shard_source.h"
#include "data/text_source.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::data;
using mathrl::test::bytes_doc;
using mathrl::test::ByteTokenizer;

namespace {

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Lines 1..7: good, invalid JSON, good, invalid UTF-8, missing field, blank, wrong type, good.
const char* kMixedJsonl =
    "{\"text\": \"alpha\"}\n"
    "{\"text\": \"bro\n"
    "{\"text\": \"gamma\", \"extra\": [1, {\"x\": null}]}\n"
    "{\"text\": \"bad \xff\xfe bytes\"}\n"
    "{\"other\": \"delta\"}\n"
    "\n"
    "{\"text\": 42}\n"
    "{\"text\": \"omega\"}\r\n";

std::vector<Document> drain(DocumentStream& s, size_t limit = 1u << 30) {
  std::vector<Document> out;
  Document d;
  while (out.size() < limit && s.next(d)) out.push_back(d);
  return out;
}

std::unique_ptr<MixedStream> single(std::unique_ptr<Source> src, bool strict, std::vector<std::string>* warnings,
                                    bool shuffle = false) {
  std::vector<SourceConfig> cfgs;
  SourceConfig c;
  c.name = "only";
  c.source = std::move(src);
  c.shuffle = shuffle;
  cfgs.push_back(std::move(c));
  StreamOptions o;
  o.strict = strict;
  o.warn = [warnings](const std::string& m) {
    if (warnings) warnings->push_back(m);
  };
  return std::make_unique<MixedStream>(std::move(cfgs), o);
}

}  // namespace

TEST(JsonlSource, MalformedLinesAreSkippedAndCounted) {
  test::TempDir dir;
  write(dir.file("a.jsonl"), kMixedJsonl);
  ByteTokenizer tok;
  auto src = std::make_unique<JsonlSource>(dir.file("a.jsonl"), field_mapper("text"), tok);
  ASSERT_EQ(src->size(), 7u);  // the blank line is not a record
  EXPECT_EQ(src->locate(6), dir.file("a.jsonl") + ":8");
  Document d;
  EXPECT_NE(src->read(1, d).find("invalid JSON"), std::string::npos);
  EXPECT_EQ(src->read(3, d), "invalid UTF-8");
  EXPECT_NE(src->read(4, d).find("missing field"), std::string::npos);
  EXPECT_NE(src->read(5, d).find("missing field or wrong type"), std::string::npos);
  std::vector<std::string> warnings;
  auto s = single(std::move(src), false, &warnings);
  auto docs = drain(*s);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].tokens, bytes_doc("alpha"));
  EXPECT_EQ(docs[1].tokens, bytes_doc("gamma"));
  EXPECT_EQ(docs[2].tokens, bytes_doc("omega"));  // "\r\n" stripped
  EXPECT_TRUE(docs[0].loss_mask.empty());
  EXPECT_EQ(s->skipped(0), 4u);
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_NE(warnings[0].find("a.jsonl:2: invalid JSON"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("a.jsonl:4: invalid UTF-8"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("a.jsonl:5"), std::string::npos) << warnings[2];
  EXPECT_NE(warnings[3].find("a.jsonl:7"), std::string::npos) << warnings[3];
  const std::string report = s->report();
  EXPECT_NE(report.find("only=1.000 (18 tokens, epoch 1, 4 skipped: "), std::string::npos) << report;
  EXPECT_NE(report.find("a.jsonl:7"), std::string::npos) << report;
}

TEST(JsonlSource, StrictModeStopsAtTheFirstBadLineWithFileAndLine) {
  test::TempDir dir;
  write(dir.file("a.jsonl"), kMixedJsonl);
  ByteTokenizer tok;
  auto s = single(std::make_unique<JsonlSource>(dir.file("a.jsonl"), field_mapper("text"), tok), true, nullptr);
  Document d;
  ASSERT_TRUE(s->next(d));
  try {
    s->next(d);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl:2: invalid JSON"), std::string::npos) << e.what();
  }
}

TEST(JsonlSource, AllMalformedSourceGivesUp) {
  test::TempDir dir;
  std::string bad;
  for (int i = 0; i < 150; ++i) bad += "{not json}\n";
  write(dir.file("bad.jsonl"), bad);
  ByteTokenizer tok;
  auto s = single(std::make_unique<JsonlSource>(dir.file("bad.jsonl"), field_mapper("text"), tok), false, nullptr);
  Document d;
  try {
    s->next(d);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("first 100 records were all malformed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:100"), std::string::npos) << e.what();
  }
  EXPECT_THROW(JsonlSource(dir.file("missing.jsonl"), field_mapper("text"), tok), DataError);
}

TEST(JsonlSource, PromptResponseMasksOnlyTheResponse) {
  test::TempDir dir;
  write(dir.file("p.jsonl"), "{\"q\": \"2+2?\", \"a\": \"4\"}\n{\"q\": \"no answer\"}\n");
  ByteTokenizer tok;
  JsonlSource src(dir.file("p.jsonl"), prompt_response_mapper("q", "a"), tok);
  Document d;
  ASSERT_EQ(src.read(0, d), "");
  std::vector<int32_t> want = bytes_doc("2+2?");
  const size_t prompt_len = want.size();
  for (int32_t t : bytes_doc("4", false)) want.push_back(t);
  EXPECT_EQ(d.tokens, want);
  ASSERT_EQ(d.loss_mask.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(d.loss_mask[i], i < prompt_len ? 0 : 1) << i;
  EXPECT_NE(src.read(1, d), "");
  // Without BOS in the tokenizer, the document starts with the prompt.
  ByteTokenizer no_bos(false);
  JsonlSource plain(dir.file("p.jsonl"), prompt_response_mapper("q", "a"), no_bos);
  ASSERT_EQ(plain.read(0, d), "");
  EXPECT_EQ(d.tokens.front(), '2' + 3);
}

TEST(TextSource, FilesAndLines) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("t/sub"));
  write(dir.file("t/b.txt"), "second file\n\nline three\n");
  write(dir.file("t/a.txt"), "first");
  write(dir.file("t/sub/c.txt"), "bad \xc3\x28 utf8");
  ByteTokenizer tok;
  TextSource files(dir.file("t"), false, tok);
  ASSERT_EQ(files.size(), 3u);
  Document d;
  ASSERT_EQ(files.read(0, d), "");
  EXPECT_EQ(d.tokens, bytes_doc("first"));
  ASSERT_EQ(files.read(1, d), "");
  EXPECT_EQ(d.tokens, bytes_doc("second file\n\nline three\n"));
  EXPECT_EQ(files.read(2, d), "invalid UTF-8");
  TextSource lines(dir.file("t"), true, tok);
  ASSERT_EQ(lines.size(), 4u);  // first | second file | line three | bad
  ASSERT_EQ(lines.read(2, d), "");
  EXPECT_EQ(d.tokens, bytes_doc("line three"));
  EXPECT_EQ(lines.locate(2), dir.file("t/b.txt") + ":3");
  TextSource one(dir.file("t/a.txt"), false, tok);
  EXPECT_EQ(one.size(), 1u);
  EXPECT_THROW(TextSource(dir.file("nope"), false, tok), DataError);
}

TEST(ShardSource, DocumentsSplitOnTheSeparator) {
  test::TempDir dir;
  // docs {5,6,7}, {8}, (empty), {9,10} without a final separator
  write_token_shard(dir.file("s.bin"), {5, 6, 7, 2, 8, 2, 2, 9, 10}, ShardDtype::U16, 2);
  EXPECT_EQ(TokenShard(dir.file("s.bin")).separator(), 2);
  ShardSource src(dir.file("s.bin"), 2, 259);
  ASSERT_EQ(src.size(), 3u);
  Document d;
  std::vector<std::vector<int32_t>> want = {{5, 6, 7}, {8}, {9, 10}};
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(src.read(i, d), "");
    EXPECT_EQ(d.tokens, want[i]);
  }
  // No separator: fixed-size chunks.
  write_token_shard(dir.file("n.bin"), {1, 2, 3, 4, 5, 6, 7}, ShardDtype::U32);
  EXPECT_EQ(TokenShard(dir.file("n.bin")).separator(), -1);
  ShardSource chunks(dir.file("n.bin"), 0, 0, 3);
  ASSERT_EQ(chunks.size(), 3u);
  ASSERT_EQ(chunks.read(2, d), "");
  EXPECT_EQ(d.tokens, std::vector<int32_t>{7});
  // The streaming writer gives the same bytes as the one-shot one.
  {
    ShardWriter w(dir.file("w.bin"), ShardDtype::U16, 2);
    w.append_document({5, 6, 7});
    w.append_document({8});
    w.append({2, 9, 10});
    w.finish();
  }
  std::ifstream a(dir.file("s.bin"), std::ios::binary), b(dir.file("w.bin"), std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(a)), {}), std::string((std::istreambuf_iterator<char>(b)), {}));
}

TEST(ShardSource, BadShardsAreClearDataErrors) {
  test::TempDir dir;
  write_token_shard(dir.file("u16.bin"), {3, 4, 2, 5}, ShardDtype::U16, 2);
  // wrong dtype
  try {
    ShardSource s(dir.file("u16.bin"), 4, 259);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("u16.bin: token shard dtype is uint16, expected uint32"), std::string::npos)
        << e.what();
  }
  // truncated payload
  std::ifstream in(dir.file("u16.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  write(dir.file("cut.bin"), bytes.substr(0, bytes.size() - 1));
  try {
    ShardSource s(dir.file("cut.bin"), 0, 259);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.bin: truncated token shard"), std::string::npos) << e.what();
  }
  // a header claiming an absurd count cannot overflow the size check
  std::string huge = bytes;
  for (int k = 16; k < 24; ++k) huge[k] = '\xff';
  write(dir.file("huge.bin"), huge);
  EXPECT_THROW(ShardSource(dir.file("huge.bin"), 0, 259), DataError);
  // ids past the vocabulary: written with another tokenizer
  write_token_shard(dir.file("big.bin"), {3, 300, 2}, ShardDtype::U16, 2);
  try {
    ShardSource s(dir.file("big.bin"), 0, 259);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 300 at index 1 is outside the tokenizer's vocabulary"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ShardWriter(dir.file("x.bin"), ShardDtype::U16, 70000), UsageError);
}
