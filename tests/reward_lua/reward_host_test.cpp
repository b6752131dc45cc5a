#include <gtest/gtest.h>

#include "common/error.h"
#include "reward/reward_host.h"
#include "reward_test_util.h"

using namespace mathrl;
using namespace mathrl::reward_lua;
using namespace mathrl::reward_lua::testutil;
using lua::CallStatus;

TEST(RewardHost, WeightedSumAndComponents) {
  RewardHost host({inline_reward("two", "return function(s) return 2 end", 0.5),
                   inline_reward("parts", "return function(s) return { a = 1, b = 0.25 } end", 2.0),
                   // The sample's fields reach Lua: ids, record (JSON -> table), step, index.
                   inline_reward("fields",
                                 "function reward(s) return #s.completion_ids + s.record.level * 10 + s.step * 100"
                                 " + s.index * 1000 + #s.record.tags * 10000 + (s.record.meta.src == 'gsm8k' and 1e5 or 0)"
                                 " + (s.reference == tostring(s.index) and 1e6 or 0) end",
                                 0.0)},
                  small_options());
  auto samples = make_samples(3);
  auto results = host.score(samples, 7);
  ASSERT_EQ(results.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& r = results[i];
    EXPECT_DOUBLE_EQ(r.total, 0.5 * 2 + 2.0 * 1.25);
    EXPECT_DOUBLE_EQ(r.components.at("two"), 2);
    EXPECT_DOUBLE_EQ(r.components.at("parts"), 1.25);
    EXPECT_DOUBLE_EQ(r.components.at("parts/a"), 1);
    EXPECT_DOUBLE_EQ(r.components.at("parts/b"), 0.25);
    double expected = double(samples[i].completion_ids.size()) + (i % 3) * 10 + 700 + (i + 1) * 1000 + 20000 + 1e5 + 1e6;
    EXPECT_DOUBLE_EQ(r.components.at("fields"), expected);
    ASSERT_EQ(r.rewards.size(), 3u);
    for (const auto& o : r.rewards) EXPECT_TRUE(o.ok()) << o.error;
  }
  EXPECT_EQ(host.stats().count("parts", CallStatus::Ok), 3);
}

TEST(RewardHost, ErroringRewardYieldsOnErrorCountedWithTraceback) {
  RewardHost host({inline_reward("ok", "return function(s) return 1 end"),
                   inline_reward("bad",
                                 "local function inner(s)\n  if s.index == 2 then error('boom at two') end\n  return 1\nend\n"
                                 "return function(s) return inner(s) end",
                                 1.0, -0.5),
                   inline_reward("wrong_type", "return function(s) return 'yes' end", 1.0, -2)},
                  small_options());
  std::vector<RewardEvent> events;
  host.set_event_sink([&](const RewardEvent& e) { events.push_back(e); });
  auto results = host.score(make_samples(3), 4);
  EXPECT_DOUBLE_EQ(results[0].components.at("bad"), 1);
  EXPECT_DOUBLE_EQ(results[1].components.at("bad"), -0.5);
  EXPECT_EQ(results[1].rewards[1].status, CallStatus::Error);
  EXPECT_DOUBLE_EQ(results[1].total, 1 - 0.5 - 2);
  EXPECT_EQ(results[2].rewards[1].status, CallStatus::Ok);
  EXPECT_EQ(host.stats().count("bad", CallStatus::Error), 1);
  EXPECT_EQ(host.stats().count("bad", CallStatus::Ok), 2);
  EXPECT_EQ(host.stats().count("wrong_type", CallStatus::Error), 3);
  ASSERT_EQ(events.size(), 4u);
  const RewardEvent* boom = nullptr;
  for (const auto& e : events)
    if (e.reward == "bad") boom = &e;
  ASSERT_NE(boom, nullptr);
  EXPECT_EQ(boom->kind, RewardEvent::Kind::CallFailed);
  EXPECT_EQ(boom->sample, 1u);
  EXPECT_EQ(boom->step, 4);
  EXPECT_NE(boom->message.find("reward 'bad':2: boom at two"), std::string::npos) << boom->message;
  EXPECT_NE(boom->message.find("stack traceback"), std::string::npos) << boom->message;
  EXPECT_NE(events[0].message.find("returned a string"), std::string::npos) << events[0].message;
}

TEST(RewardHost, EndlessLoopTimesOutAndIsCounted) {
  RewardHost host({inline_reward("loop", "return function(s) if s.index == 1 then while true do end end return 3 end", 1, 0.25)},
                  small_options());
  std::vector<RewardEvent> events;
  host.set_event_sink([&](const RewardEvent& e) { events.push_back(e); });
  auto results = host.score(make_samples(2), 1);
  EXPECT_EQ(results[0].rewards[0].status, CallStatus::Timeout);
  EXPECT_DOUBLE_EQ(results[0].total, 0.25);
  EXPECT_DOUBLE_EQ(results[1].total, 3);
  EXPECT_EQ(host.stats().count("loop", CallStatus::Timeout), 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].message.find("instruction budget exceeded"), std::string::npos) << events[0].message;
  // The host keeps working after a timeout.
  results = host.score(make_samples(1), 2);
  EXPECT_EQ(results[0].rewards[0].status, CallStatus::Timeout);
}

TEST(RewardHost, MemoryHogIsCounted) {
  RewardHost host({inline_reward("hog",
                                 "return function(s) if s.index == 2 then local t = {} for i = 1, 1e9 do t[i] = "
                                 "string.rep('x', 100) .. i end end return 1 end",
                                 1, -1)},
                  small_options());
  host.set_event_sink([](const RewardEvent&) {});
  auto results = host.score(make_samples(3), 1);
  EXPECT_EQ(results[1].rewards[0].status, CallStatus::OutOfMemory) << results[1].rewards[0].error;
  EXPECT_DOUBLE_EQ(results[1].total, -1);
  EXPECT_DOUBLE_EQ(results[2].total, 1);
  EXPECT_EQ(host.stats().count("hog", CallStatus::OutOfMemory), 1);
  EXPECT_EQ(host.stats().count("hog", CallStatus::Ok), 2);
}

TEST(RewardHost, ResultsDoNotDependOnThreadCount) {
  auto specs = [] {
    return std::vector<RewardSpec>{
        inline_reward("noisy", "return function(s) return math.random() + #s.completion / 100 end"),
        inline_reward("dice", "return function(s) local t = 0 for i = 1, 10 do t = t + math.random(1, 6) end return { d = t } end",
                      0.1)};
  };
  auto samples = make_samples(40);
  RewardHost one(specs(), small_options(1)), four(specs(), small_options(4));
  auto a = one.score(samples, 3), b = four.score(samples, 3);
  auto a2 = one.score(samples, 3);  // again on the same (now used) states
  ASSERT_EQ(a.size(), b.size());
  bool any_differs_between_samples = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].total, b[i].total) << i;
    EXPECT_EQ(a[i].total, a2[i].total) << i;
    EXPECT_EQ(a[i].components, b[i].components) << i;
    if (i > 0 && a[i].components.at("noisy") != a[0].components.at("noisy")) any_differs_between_samples = true;
    if (i > 0 && a[i].components.at("dice/d") != a[0].components.at("dice/d")) any_differs_between_samples = true;
  }
  EXPECT_TRUE(any_differs_between_samples);
  // Another step or seed draws other numbers.
  auto c = one.score(samples, 4);
  EXPECT_NE(a[0].components.at("noisy"), c[0].components.at("noisy"));
}

TEST(RewardHost, BuiltinRewards) {
  RewardSpec correct, format, length, think;
  correct.name = "correct", correct.builtin = "correct";
  format.name = "format", format.builtin = "format", format.weight = 0.1;
  length.name = "length", length.builtin = "length", length.options_lua = "{max_len = 10, cache = 4}";
  think.name = "think", think.builtin = "format", think.options_lua = "{think = true}", think.weight = 0;
  RewardHost host({correct, format, length, think}, small_options());
  auto make = [](std::string completion, std::string ref, size_t ntokens) {
    Sample s;
    s.completion = std::move(completion);
    s.reference = std::move(ref);
    s.completion_ids.assign(ntokens, 5);
    return s;
  };
  std::vector<Sample> samples = {
      make("We add: 2 + 2 = 4. \\boxed{4}", "4", 5),                    // right, well formed, short
      make("\\boxed{4}", "4", 6),                                       // no reasoning before the answer
      make("Maybe \\boxed{3} or \\boxed{4}", "4", 8),                   // two answers; length in the soft zone
      make("Thinking about it, the answer is 1,000.", "1000", 12),      // an answer phrase, no \\boxed; overlong
      make("<think>2 + 2</think> so \\boxed{ 4 }", "4", 1),             // think block before the answer
  };
  auto r = host.score(samples, 1);
  for (auto& x : r)
    for (auto& o : x.rewards) ASSERT_TRUE(o.ok()) << o.error;
  EXPECT_DOUBLE_EQ(r[0].components.at("correct"), 1);
  EXPECT_DOUBLE_EQ(r[0].components.at("format"), 1);
  EXPECT_DOUBLE_EQ(r[0].components.at("length"), 0);
  EXPECT_DOUBLE_EQ(r[0].components.at("think"), 0);
  EXPECT_DOUBLE_EQ(r[0].total, 1 + 0.1);
  EXPECT_DOUBLE_EQ(r[1].components.at("correct"), 1);
  EXPECT_DOUBLE_EQ(r[1].components.at("format"), 0);
  EXPECT_DOUBLE_EQ(r[2].components.at("correct"), 1);  // the last boxed answer counts
  EXPECT_DOUBLE_EQ(r[2].components.at("format"), 0);
  EXPECT_DOUBLE_EQ(r[2].components.at("length"), (6.0 - 8.0) / 4.0);
  EXPECT_DOUBLE_EQ(r[3].components.at("correct"), 1);  // the native grader reads "the answer is 1,000"
  EXPECT_DOUBLE_EQ(r[3].components.at("format"), 0);
  EXPECT_DOUBLE_EQ(r[3].components.at("length"), -1);
  EXPECT_DOUBLE_EQ(r[4].components.at("think"), 1);
  EXPECT_DOUBLE_EQ(r[4].components.at("correct"), 1);
}

TEST(RewardHost, GraderModuleAndInjectedGrader) {
  auto spec = inline_reward("g",
                            "return function(s)\n"
                            "  local a = mathrl_grader.extract(s.completion)\n"
                            "  local ok = mathrl_grader.equal(a, s.reference)\n"
                            "  local none = mathrl_grader.extract('no answer here')\n"
                            "  return (ok and 1 or 0) + (none == nil and 10 or 0) + (mathrl_grader.grade(s.completion, s.reference) and 100 or 0)\n"
                            "end");
  auto samples = make_samples(2);
  samples[1].reference = "999";
  RewardHost host({spec}, small_options());
  auto r = host.score(samples, 1);
  EXPECT_DOUBLE_EQ(r[0].total, 111);
  EXPECT_DOUBLE_EQ(r[1].total, 10);
  // An injected grader (what the native one plugs into) is the one the sandbox sees.
  RewardHostOptions o = small_options();
  o.grader = default_grader();
  o.grader.equal = [](std::string_view, std::string_view gold) { return gold == "999"; };
  o.grader.grade = nullptr;  // grade() then goes through the injected extract + equal
  RewardHost injected({spec}, o);
  r = injected.score(samples, 1);
  EXPECT_DOUBLE_EQ(r[0].total, 10);
  EXPECT_DOUBLE_EQ(r[1].total, 111);
  // Bad arguments are Lua-style errors inside the reward, not crashes.
  RewardHost bad({inline_reward("b", "return function(s) return mathrl_grader.equal(1) and 1 or 0 end")}, small_options());
  std::vector<RewardEvent> events;
  bad.set_event_sink([&](const RewardEvent& e) { events.push_back(e); });
  r = bad.score(make_samples(1), 1);
  EXPECT_EQ(r[0].rewards[0].status, CallStatus::Error);
  EXPECT_NE(r[0].rewards[0].error.find("bad argument #1 to 'mathrl_grader.equal'"), std::string::npos) << r[0].rewards[0].error;
}

TEST(RewardHost, LoadErrorsAreReportedUpFront) {
  EXPECT_THROW(RewardHost({inline_reward("syntax", "return function(s) return 1 ")}, small_options()), RecipeError);
  try {
    RewardHost({inline_reward("nofn", "local x = 1")}, small_options());
    FAIL() << "expected RecipeError";
  } catch (const RecipeError& e) {
    EXPECT_NE(std::string(e.what()).find("reward 'nofn'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'reward'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(RewardHost({inline_reward("a", "return function() return 1 end"), inline_reward("a", "return function() return 1 end")},
                          small_options()),
               RecipeError);
  RewardSpec unknown;
  unknown.name = "u", unknown.builtin = "fromat";
  EXPECT_THROW(RewardHost({unknown}, small_options()), RecipeError);
  // Two files may both define a global `reward`: each gets its own globals.
  RewardHost two({inline_reward("x", "function reward() return 1 end"), inline_reward("y", "function reward() return 2 end")},
                 small_options());
  auto r = two.score(make_samples(1), 0);
  EXPECT_DOUBLE_EQ(r[0].components.at("x"), 1);
  EXPECT_DOUBLE_EQ(r[0].components.at("y"), 2);
}

TEST(RewardHost, SummarizeGivesMeansAndFailureCounts) {
  RewardHost host({inline_reward("v", "return function(s) if s.index == 3 then error('x') end return { a = s.index } end", 2.0, -1)},
                  small_options());
  host.set_event_sink([](const RewardEvent&) {});
  auto results = host.score(make_samples(3), 1);
  auto m = summarize(results, host.specs());
  EXPECT_DOUBLE_EQ(m.at("reward/total"), (2.0 * 1 + 2.0 * 2 - 2.0) / 3);
  EXPECT_DOUBLE_EQ(m.at("reward/v"), (1 + 2 - 1) / 3.0);
  EXPECT_DOUBLE_EQ(m.at("reward/v/a"), 1.5);  // over the samples that produced it
  EXPECT_DOUBLE_EQ(m.at("reward_failures/v/error"), 1);
  EXPECT_EQ(m.count("reward_failures/v/timeout"), 0u);
}

TEST(RewardHost, MalformedResultsAreErrors) {
  RewardHost host({inline_reward("nan", "return function(s) return 0/0 end", 1, 0.5),
                   inline_reward("keys", "return function(s) return { 1, 2 } end", 1, 0.25),
                   inline_reward("vals", "return function(s) return { a = 'x' } end", 1, 0.125),
                   inline_reward("none", "return function(s) end", 1, 0)},
                  small_options());
  host.set_event_sink([](const RewardEvent&) {});
  auto r = host.score(make_samples(1), 1);
  EXPECT_DOUBLE_EQ(r[0].total, 0.5 + 0.25 + 0.125);
  EXPECT_NE(r[0].rewards[0].error.find("non-finite"), std::string::npos) << r[0].rewards[0].error;
  EXPECT_NE(r[0].rewards[1].error.find("number key"), std::string::npos) << r[0].rewards[1].error;
  EXPECT_NE(r[0].rewards[2].error.find("holding a string"), std::string::npos) << r[0].rewards[2].error;
  EXPECT_NE(r[0].rewards[3].error.find("returned a nil"), std::string::npos) << r[0].rewards[3].error;
  EXPECT_EQ(r[0].components.count("vals/a"), 0u);
  for (const char* n : {"nan", "keys", "vals", "none"}) EXPECT_EQ(host.stats().count(n, CallStatus::Error), 1) << n;
}
