#include <gtest/gtest.h>

#include "common/error.h"
#include "data/packer.h"

using namespace mathrl;
using namespace mathrl::data;

TEST(Packer, PacksWithEosDocIdsAndPositionResets) {
  Packer p(8, /*eos=*/99, /*pad=*/0);
  p.add({1, 2, 3});
  p.add({4, 5}, {0, 1});  // prompt token 4 is not a target
  EXPECT_FALSE(p.ready());  // 4 + 3 = 7 tokens
  p.add({6, 7, 8});
  ASSERT_TRUE(p.ready());
  PackedRow r = p.pop();
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{1, 2, 3, 99, 4, 5, 99, 6}));
  EXPECT_EQ(r.doc_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 2}));
  EXPECT_EQ(r.positions, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 0}));
  EXPECT_EQ(r.loss_mask, (std::vector<uint8_t>{1, 1, 1, 1, 0, 1, 1, 1}));
  PackedRow rest;
  ASSERT_TRUE(p.flush(rest));  // 7 8 EOS, split document continues at positions 0..2 in the new row
  EXPECT_EQ(rest.tokens, (std::vector<int32_t>{7, 8, 99, 0, 0, 0, 0, 0}));
  EXPECT_EQ(rest.doc_ids, (std::vector<int32_t>{0, 0, 0, -1, -1, -1, -1, -1}));
  EXPECT_EQ(rest.positions, (std::vector<int32_t>{0, 1, 2, 0, 0, 0, 0, 0}));
  EXPECT_EQ(rest.loss_mask, (std::vector<uint8_t>{1, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_FALSE(p.flush(rest));
}

TEST(Packer, BadSeqLenIsUsageError) { EXPECT_THROW(Packer(1, 2, 0), UsageError); }
