// In-process parts of data parallelism: sharding by rank (whole groups, contiguous, covering),
// the ZeRO partition (contiguous, balanced), and world size 1 (DataParallel is a no-op, ShardedAdamW
// equals train::AdamW).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/data_parallel.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "train/optimizer.h"

using namespace mathrl;

TEST(RankShard, RanksTakeContiguousWholeGroupsCoveringTheBatch) {
  for (int world : {1, 2, 3, 4, 7})
    for (int64_t group : {1, 2, 3, 8})
      for (int64_t groups : {0, 1, 5, 12, 13}) {
        const int64_t n = groups * group;
        std::vector<int64_t> owner(static_cast<size_t>(n), -1);
        int64_t expected_begin = 0;
        for (int r = 0; r < world; ++r) {
          auto [b, e] = dist::shard_range(n, r, world, group);
          EXPECT_EQ(b, expected_begin);  // contiguous, in rank order
          EXPECT_EQ(b % group, 0);
          EXPECT_EQ(e % group, 0);
          // Sizes differ by at most one group.
          EXPECT_LE(std::abs((e - b) / group - groups / world), 1);
          for (int64_t i = b; i < e; ++i) owner[static_cast<size_t>(i)] = r;
          expected_begin = e;
        }
        EXPECT_EQ(expected_begin, n);
        EXPECT_TRUE(std::none_of(owner.begin(), owner.end(), [](int64_t o) { return o < 0; }));
        EXPECT_EQ(dist::equal_shards(n, world, group), groups % world == 0);
      }
}

TEST(RankShard, IndicesFollowTheRange) {
  std::vector<int64_t> global = {9, 8, 7, 6, 5, 4, 3, 2};
  EXPECT_EQ(dist::shard_indices(global, 0, 2, 2), (std::vector<int64_t>{9, 8, 7, 6}));
  EXPECT_EQ(dist::shard_indices(global, 1, 2, 2), (std::vector<int64_t>{5, 4, 3, 2}));
  EXPECT_EQ(dist::shard_indices(global, 2, 3, 2), (std::vector<int64_t>{5, 4, 3, 2}));
  EXPECT_THROW(dist::shard_range(7, 0, 2, 2), UsageError);  // groups must stay whole
  EXPECT_THROW(dist::shard_range(8, 2, 2, 1), UsageError);
}

TEST(ZeroPartition, ContiguousBalancedAndDeterministic) {
  std::vector<int64_t> numels = {1536, 1024, 512, 512, 1024, 2048, 2048, 2048, 32, 32, 1024, 512, 512, 1024, 2048, 2048, 2048, 32, 32, 32, 1536};
  const int64_t total = std::accumulate(numels.begin(), numels.end(), int64_t{0});
  const int64_t largest = *std::max_element(numels.begin(), numels.end());
  for (int world : {1, 2, 3, 4}) {
    auto p = dist::Partition::balanced(numels, world);
    ASSERT_EQ(p.owner.size(), numels.size());
    EXPECT_TRUE(std::is_sorted(p.owner.begin(), p.owner.end()));  // contiguous ranges
    int64_t sum = 0;
    for (int r = 0; r < world; ++r) {
      int64_t mine = 0;
      for (size_t i : p.owned(r)) mine += numels[i];
      EXPECT_EQ(mine, p.numel[static_cast<size_t>(r)]);
      EXPECT_LE(std::abs(mine - total / world), largest) << "rank " << r << " of " << world;
      sum += mine;
    }
    EXPECT_EQ(sum, total);
    EXPECT_EQ(dist::Partition::balanced(numels, world).owner, p.owner);
  }
  EXPECT_EQ(dist::Partition::balanced({10, 10, 10, 10}, 2).owner, (std::vector<int>{0, 0, 1, 1}));
}

namespace {
std::vector<std::pair<std::string, at::Tensor>> make_params(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("w1", torch::randn({6, 5}).requires_grad_());
  out.emplace_back("b1", torch::randn({6}).requires_grad_());
  out.emplace_back("w2", torch::randn({3, 6}).requires_grad_());
  return out;
}
at::Tensor loss_of(const std::vector<std::pair<std::string, at::Tensor>>& p, const at::Tensor& x) {
  at::Tensor h = torch::tanh(torch::matmul(x, p[0].second.t()) + p[1].second);
  return torch::matmul(h, p[2].second.t()).pow(2).mean();
}
}  // namespace

TEST(WorldSizeOne, DataParallelIsANoOpAndShardedAdamWEqualsAdamW) {
  auto group = dist::ProcessGroup::create(dist::Rendezvous{});
  ASSERT_EQ(group->world_size(), 1);
  auto a = make_params(3), b = make_params(3);
  dist::DataParallel dp(group.get(), a);
  EXPECT_FALSE(dp.active());
  EXPECT_EQ(dp.bucket_count(), 0);
  train::AdamWOptions o;
  o.clip = 0.1;  // active: the gradient norm of this loss is larger
  o.fused = train::AdamWOptions::Fused::Off;
  train::AdamW plain(a, o);
  dist::ShardedAdamW sharded(group.get(), b, o, {});
  torch::manual_seed(5);
  for (int step = 0; step < 4; ++step) {
    at::Tensor x = torch::randn({4, 5});
    loss_of(a, x).backward();
    at::Tensor g = a[0].second.grad().clone();
    dp.finish();
    EXPECT_TRUE(torch::equal(a[0].second.grad(), g));  // untouched
    loss_of(b, x).backward();
    auto ra = plain.step(1e-2, 1.0);
    auto rb = sharded.step(1e-2, 1.0);
    EXPECT_GT(ra.grad_norm, o.clip);
    EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-6);
  }
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT((a[i].second - b[i].second).abs().max().item<double>(), 1e-6) << a[i].first;
  EXPECT_FALSE(b[0].second.grad().defined());
}
