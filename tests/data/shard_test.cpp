#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "data/shard.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::data;

TEST(Shard, RoundTripU16AndU32) {
  test::TempDir dir;
  std::vector<int32_t> toks = {0, 1, 65535, 42, 7};
  write_token_shard(dir.file("a.bin"), toks, ShardDtype::U16);
  TokenShard a(dir.file("a.bin"));
  ASSERT_EQ(a.size(), toks.size());
  EXPECT_EQ(a.dtype(), ShardDtype::U16);
  for (size_t i = 0; i < toks.size(); ++i) EXPECT_EQ(a.at(i), toks[i]);
  std::vector<int32_t> big = {100000, 0, 151643, 2000000000};
  write_token_shard(dir.file("b.bin"), big, ShardDtype::U32);
  TokenShard b(dir.file("b.bin"), 4);
  std::vector<int32_t> out;
  b.read(1, 10, out);
  EXPECT_EQ(out, std::vector<int32_t>(big.begin() + 1, big.end()));
}

TEST(Shard, TokenTooLargeForU16IsUsageError) {
  test::TempDir dir;
  EXPECT_THROW(write_token_shard(dir.file("x.bin"), {70000}, ShardDtype::U16), UsageError);
  EXPECT_THROW(write_token_shard(dir.file("x.bin"), {-1}, ShardDtype::U32), UsageError);
}

TEST(Shard, TruncatedShardIsDataError) {
  test::TempDir dir;
  std::vector<int32_t> toks(100, 3);
  write_token_shard(dir.file("t.bin"), toks, ShardDtype::U32);
  // Cut the file in the middle of the token payload.
  std::ifstream in(dir.file("t.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir.file("cut.bin"), std::ios::binary).write(bytes.data(), bytes.size() - 10);
  try {
    TokenShard s(dir.file("cut.bin"));
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cut.bin"), std::string::npos) << e.what();
  }
  std::ofstream(dir.file("tiny.bin"), std::ios::binary).write(bytes.data(), 5);
  EXPECT_THROW(TokenShard(dir.file("tiny.bin")), DataError);
}

TEST(Shard, WrongDtypeAndBadMagicAreDataErrors) {
  test::TempDir dir;
  write_token_shard(dir.file("u16.bin"), {1, 2, 3}, ShardDtype::U16);
  try {
    TokenShard s(dir.file("u16.bin"), 4);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("uint16"), std::string::npos) << e.what();
  }
  std::ofstream(dir.file("junk.bin"), std::ios::binary) << std::string(64, 'x');
  EXPECT_THROW(TokenShard(dir.file("junk.bin")), DataError);
  EXPECT_THROW(TokenShard(dir.file("missing.bin")), DataError);
}
