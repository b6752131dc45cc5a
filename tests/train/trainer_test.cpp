// The training loop: packed rows that resume exactly, the masked loss against full logits, gradient
// accumulation equal to the big batch, resume that reproduces the uninterrupted run's losses, and
// the NaN guard stopping a run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "support/test_support.h"
#include "train/trainer.h"
#include "train_test_util.h"

using namespace mathrl;
using namespace mathrl::train;
using mathrl::train::test::tiny_config;
using mathrl::train::test::VectorStream;

namespace {

TrainerOptions tiny_options(int64_t steps, bool doc_masking = true) {
  TrainerOptions o;
  o.seq_len = 24;
  o.micro_batch = 2;
  o.grad_accum = 2;
  o.steps = steps;
  o.doc_masking = doc_masking;
  o.eos_id = 1;
  o.pad_id = 2;
  o.log_every = 1000;
  return o;
}

AdamWOptions adam() {
  AdamWOptions o;
  o.beta2 = 0.95;
  o.weight_decay = 0.01;
  o.clip = 1.0;
  return o;
}

LrSchedule schedule(int64_t steps) { return LrSchedule({ScheduleKind::Cosine, 3e-3, 2, steps, 0.1}); }

}  // namespace

TEST(RowSource, ResumedStateYieldsTheSameRows) {
  VectorStream a(200, 7);
  RowSource rows(a, 16, 1, 2);
  data::PackedRow row;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(rows.next(row));
  std::string state = rows.save_state();
  std::vector<data::PackedRow> expect;
  while (rows.next(row)) expect.push_back(row);
  ASSERT_GT(expect.size(), 20u);

  VectorStream b(200, 7);
  RowSource resumed(b, 16, 1, 2);
  resumed.load_state(state);
  for (size_t i = 0; i < expect.size(); ++i) {
    ASSERT_TRUE(resumed.next(row)) << i;
    EXPECT_EQ(row.tokens, expect[i].tokens) << i;
    EXPECT_EQ(row.positions, expect[i].positions) << i;
    EXPECT_EQ(row.doc_ids, expect[i].doc_ids) << i;
    EXPECT_EQ(row.loss_mask, expect[i].loss_mask) << i;
  }
  EXPECT_FALSE(resumed.next(row));
}

TEST(Trainer, MaskedLossEqualsFullLogitsReference) {
  model::Decoder m = model::random_decoder(tiny_config(), 5);
  VectorStream s(50, 1);
  RowSource rows(s, 24, 1, 2);
  std::vector<data::PackedRow> batch_rows(3);
  for (auto& r : batch_rows) ASSERT_TRUE(rows.next(r));
  for (bool masking : {true, false}) {
    Batch b = make_batch(batch_rows, at::kCPU, masking);
    int64_t expect_targets = 0;
    for (auto& r : batch_rows) expect_targets += count_targets(r, masking);
    ASSERT_EQ(b.target_tokens, expect_targets);
    at::Tensor loss = masked_lm_loss(m, b, 7.0);
    // Reference: full logits, log_softmax, and the target rule written out per token.
    at::NoGradGuard g;
    at::Tensor h = m->hidden_states(b.ids, b.positions, b.document_ids);
    at::Tensor logp = at::log_softmax(m->logits(h).to(at::kDouble), -1);
    double ref = 0;
    int64_t n = 0;
    for (size_t r = 0; r < batch_rows.size(); ++r) {
      const auto& row = batch_rows[r];
      for (size_t t = 0; t + 1 < row.tokens.size(); ++t) {
        bool target = row.loss_mask[t + 1] && row.doc_ids[t + 1] >= 0 && (!masking || row.doc_ids[t + 1] == row.doc_ids[t]);
        if (!target) continue;
        ref -= logp[r][t][row.tokens[t + 1]].item<double>();
        ++n;
      }
    }
    EXPECT_EQ(n, expect_targets);
    EXPECT_NEAR(loss.item<double>(), ref / 7.0, 1e-5 * std::abs(ref));
  }
}

TEST(Trainer, GradientAccumulationEqualsTheBigBatch) {
  // The same 4 rows per step as one micro-batch of 4 or four of 1: equal losses and equal gradients
  // (the gradients the optimizer sees, captured by its hook, at every step).
  auto run = [](int64_t micro, int64_t accum) {
    model::Decoder m = model::random_decoder(tiny_config(), 11);
    AdamW opt = AdamW::for_module(*m, adam());
    std::vector<std::vector<at::Tensor>> grads;
    opt.set_grad_hook([&](std::vector<at::Tensor>& g) {
      grads.emplace_back();
      for (auto& t : g) grads.back().push_back(t.clone());
    });
    VectorStream s(400, 5);
    TrainerOptions o = tiny_options(3);
    o.micro_batch = micro;
    o.grad_accum = accum;
    Trainer t(m, opt, schedule(3), s, o);
    std::vector<double> losses;
    for (int i = 0; i < 3; ++i) losses.push_back(t.train_step().loss);
    return std::make_pair(losses, grads);
  };
  auto [big_loss, big_grads] = run(4, 1);
  auto [acc_loss, acc_grads] = run(1, 4);
  ASSERT_EQ(big_grads.size(), 3u);
  ASSERT_EQ(acc_grads.size(), 3u);
  for (size_t i = 0; i < big_loss.size(); ++i) EXPECT_NEAR(big_loss[i], acc_loss[i], 1e-5) << i;
  for (size_t s = 0; s < big_grads.size(); ++s)
    for (size_t i = 0; i < big_grads[s].size(); ++i) {
      double scale = big_grads[s][i].abs().max().item<double>();
      EXPECT_LT((big_grads[s][i] - acc_grads[s][i]).abs().max().item<double>(), 1e-4 * scale + 1e-8) << s << " " << i;
    }
  EXPECT_LT(big_loss.back(), big_loss.front());  // it learns
}

TEST(Trainer, ResumeReproducesTheUninterruptedLosses) {
  mathrl::test::TempDir dir;
  const int64_t steps = 8;
  std::vector<double> straight;
  {
    model::Decoder m = model::random_decoder(tiny_config(), 21);
    AdamW opt = AdamW::for_module(*m, adam());
    VectorStream s(600, 9);
    Trainer t(m, opt, schedule(steps), s, tiny_options(steps));
    for (int64_t i = 0; i < steps; ++i) straight.push_back(t.train_step().loss);
  }
  // Interrupted run: 3 steps, checkpoint, stop.
  CheckpointManager ckpts(dir.file("checkpoints"), {});
  {
    model::Decoder m = model::random_decoder(tiny_config(), 21);
    AdamW opt = AdamW::for_module(*m, adam());
    VectorStream s(600, 9);
    Trainer t(m, opt, schedule(steps), s, tiny_options(steps));
    t.set_checkpoints(&ckpts);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(t.train_step().loss, straight[i]);
    t.checkpoint();
  }
  // Resumed: a model initialized differently and a fresh stream; everything comes from the checkpoint.
  model::Decoder m = model::random_decoder(tiny_config(), 999);
  AdamW opt = AdamW::for_module(*m, adam());
  VectorStream s(600, 9);
  Trainer t(m, opt, schedule(steps), s, tiny_options(steps));
  t.resume(CheckpointManager::resolve(dir.path()));
  EXPECT_EQ(t.step(), 3);
  for (int64_t i = 3; i < steps; ++i) {
    StepStats st = t.train_step();
    EXPECT_EQ(st.step, i + 1);
    EXPECT_NEAR(st.loss, straight[i], 1e-6) << "step " << i + 1;
  }
}

TEST(Trainer, RunEvaluatesCheckpointsAndWritesMetrics) {
  mathrl::test::TempDir dir;
  model::Decoder m = model::random_decoder(tiny_config(), 3);
  AdamW opt = AdamW::for_module(*m, adam());
  VectorStream s(600, 4), held_out(100, 40);
  TrainerOptions o = tiny_options(6);
  o.eval_every = 3;
  o.eval_rows = 8;
  o.checkpoint_every = 4;
  Trainer t(m, opt, schedule(6), s, o);
  CheckpointManager ckpts(dir.file("checkpoints"), {2, "eval_loss"});
  MetricsWriter metrics;
  metrics.open(dir.file("metrics.jsonl"), false);
  int hook_calls = 0;
  t.set_eval_data(&held_out);
  t.set_checkpoints(&ckpts);
  t.set_metrics(&metrics);
  t.set_eval_hook([&](int64_t step) { ++hook_calls; return std::map<std::string, double>{{"custom", double(step)}}; });
  TrainSummary sum = t.run();
  EXPECT_EQ(sum.steps, 6);
  EXPECT_EQ(sum.stop_reason, "steps");
  EXPECT_EQ(hook_calls, 2);  // steps 3 and 6
  EXPECT_TRUE(std::isfinite(sum.eval_loss));
  auto valid = ckpts.valid();
  ASSERT_EQ(valid.size(), 2u);  // step 4 and the final step 6
  EXPECT_EQ(valid.back().step, 6);
  std::string text = read_file(dir.file("metrics.jsonl"));
  EXPECT_NE(text.find("\"eval_loss\""), std::string::npos);
  EXPECT_NE(text.find("\"mix/a\""), std::string::npos);
  EXPECT_NE(text.find("\"custom\":6"), std::string::npos) << text;
  // The evaluated loss equals a direct evaluation of the final weights.
  EXPECT_NEAR(t.evaluate(), sum.eval_loss, 1e-9);
}

TEST(Trainer, StopsAfterKNonFiniteStepsInARow) {
  model::Decoder m = model::random_decoder(tiny_config(), 3);
  {
    at::NoGradGuard g;
    m->model->norm->weight.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  AdamWOptions ao = adam();
  ao.nan_guard_limit = 3;
  AdamW opt = AdamW::for_module(*m, ao);
  VectorStream s(600, 4);
  Trainer t(m, opt, schedule(10), s, tiny_options(10));
  try {
    t.run();
    FAIL() << "expected the guard to stop the run";
  } catch (const mathrl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos);
  }
  EXPECT_EQ(opt.skipped(), 3);
  EXPECT_EQ(t.step(), 2);  // the third step threw before completing
}

TEST(Trainer, StopsAtTheEndOfTheData) {
  model::Decoder m = model::random_decoder(tiny_config(), 3);
  AdamW opt = AdamW::for_module(*m, adam());
  VectorStream s(10, 4);
  Trainer t(m, opt, schedule(100), s, tiny_options(100));
  TrainSummary sum = t.run();
  EXPECT_EQ(sum.stop_reason, "data");
  EXPECT_GT(sum.steps, 0);
  EXPECT_LT(sum.steps, 100);
}
