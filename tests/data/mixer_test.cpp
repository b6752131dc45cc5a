#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "data/mixer.h"

using namespace mathrl;
using namespace mathrl::data;

TEST(Mixer, RealizesWeightsByTokensOver1M) {
  Mixer mix({"a", "b"}, {0.7, 0.3});
  // Documents of varying length (source b's are longer) so token weighting != document weighting.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> len_a(10, 200), len_b(100, 900);
  uint64_t total = 0;
  while (total < 1000000) {
    const size_t i = mix.pick();
    const int n = i == 0 ? len_a(rng) : len_b(rng);
    mix.record(i, n);
    total += n;
  }
  const auto r = mix.realized();
  EXPECT_NEAR(r[0], 0.7, 0.02);
  EXPECT_NEAR(r[1], 0.3, 0.02);
  EXPECT_NE(mix.report().find("a=0.7"), std::string::npos) << mix.report();
}

TEST(Mixer, DeterministicAndCurriculumWeights) {
  Mixer m1({"a", "b", "c"}, {1, 1, 2}), m2({"a", "b", "c"}, {1, 1, 2});
  for (int s = 0; s < 1000; ++s) {
    if (s == 500) {  // a curriculum changes weights mid-run
      m1.set_weights({0, 1, 0});
      m2.set_weights({0, 1, 0});
    }
    const size_t i = m1.pick();
    ASSERT_EQ(i, m2.pick());
    if (s >= 500) ASSERT_EQ(i, 1u);
    m1.record(i, 10 + s % 7);
    m2.record(i, 10 + s % 7);
  }
}

TEST(Mixer, BadWeightsAreUsageErrors) {
  EXPECT_THROW(Mixer({"a", "b"}, {0.5, -0.1}), UsageError);
  EXPECT_THROW(Mixer({"a", "b"}, {0, 0}), UsageError);
  EXPECT_THROW(Mixer({"a"}, {1, 2}), UsageError);
  EXPECT_THROW(Mixer({}, {}), UsageError);
  try {
    Mixer({"gsm8k", "math"}, {1, -2});
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'math' is -2"), std::string::npos) << e.what();
    return;
  }
  FAIL() << "expected UsageError";
}

TEST(Mixer, ExhaustedSourceIsSkipped) {
  Mixer m({"a", "b"}, {0.5, 0.5});
  m.set_exhausted(0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(m.pick(), 1u);
  m.set_exhausted(1);
  EXPECT_THROW(m.pick(), Error);
}
