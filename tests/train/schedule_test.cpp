// Learning-rate schedules against their formulas written out here.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "train/schedule.h"

using namespace mathrl::train;

TEST(Schedule, WarmupThenCosineToFloor) {
  ScheduleOptions o{ScheduleKind::Cosine, 1e-3, 10, 110, 0.1};
  LrSchedule s(o);
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  for (int64_t step : {11, 35, 60, 90, 110}) {
    double p = (step - 10) / 100.0;
    EXPECT_NEAR(s.at(step), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * p))), 1e-15) << step;
  }
  EXPECT_NEAR(s.at(60), 1e-3 * 0.55, 1e-15);  // halfway: midpoint of peak and floor
  EXPECT_DOUBLE_EQ(s.at(500), 1e-4);         // past the end: the floor
}

TEST(Schedule, ConstantAndLinear) {
  LrSchedule c({ScheduleKind::Constant, 2e-5, 4, 100, 0.0});
  EXPECT_DOUBLE_EQ(c.at(2), 1e-5);
  EXPECT_DOUBLE_EQ(c.at(4), 2e-5);
  EXPECT_DOUBLE_EQ(c.at(99), 2e-5);
  LrSchedule l({ScheduleKind::Linear, 1.0, 0, 11, 0.0});
  EXPECT_DOUBLE_EQ(l.at(1), 1.0 - 1.0 / 11);
  EXPECT_NEAR(l.at(6), 1.0 - 6.0 / 11, 1e-15);
  EXPECT_DOUBLE_EQ(l.at(11), 0.0);
  LrSchedule lf({ScheduleKind::Linear, 1.0, 0, 11, 0.5});
  EXPECT_DOUBLE_EQ(lf.at(11), 0.5);
}

TEST(Schedule, MultiStepLikeDeepSeekMath) {
  // Peak after warmup until 80% of the steps, 31.6% until 90%, then 10%.
  LrSchedule m({ScheduleKind::MultiStep, 4.2e-4, 20, 1000, 0.0});
  EXPECT_DOUBLE_EQ(m.at(10), 4.2e-4 * 10 / 20);
  EXPECT_DOUBLE_EQ(m.at(21), 4.2e-4);
  EXPECT_DOUBLE_EQ(m.at(800), 4.2e-4);
  EXPECT_DOUBLE_EQ(m.at(801), 4.2e-4 * 0.316);
  EXPECT_DOUBLE_EQ(m.at(900), 4.2e-4 * 0.316);
  EXPECT_DOUBLE_EQ(m.at(901), 4.2e-4 * 0.1);
  EXPECT_DOUBLE_EQ(m.at(1000), 4.2e-4 * 0.1);
}

TEST(Schedule, FunctionOfTheStep) {
  LrSchedule f({ScheduleKind::Function, 0, 0, 1, 0}, [](int64_t step) { return 1e-3 / static_cast<double>(step); });
  EXPECT_DOUBLE_EQ(f.at(4), 2.5e-4);
  EXPECT_THROW(LrSchedule({ScheduleKind::Function, 0, 0, 1, 0}), mathrl::UsageError);
  LrSchedule bad({ScheduleKind::Function, 0, 0, 1, 0}, [](int64_t) { return -1.0; });
  EXPECT_THROW(bad.at(1), mathrl::UsageError);
}

TEST(Schedule, ParsesNamesWithSuggestions) {
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(parse_schedule("linear"), ScheduleKind::Linear);
  try {
    parse_schedule("cosin");
    FAIL();
  } catch (const mathrl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'cosine'"), std::string::npos) << e.what();
  }
}
