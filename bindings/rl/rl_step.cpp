// One step of the rl stage: rollout (with dynamic sampling), rewards, advantages, mu updates.
#include <algorithm>
#include <chrono>
#include <cmath>

#include <torch/torch.h>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define MATHRL_RL_CUDA_STATS 1
#endif

#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "dist/fsdp.h"
#include "dist/process_group.h"
#include "lua_host.h"
#include "rl/advantages.h"
#include "rl/rl_dist.h"
#include "rl/rl_module.h"
#include "rl/rl_run.h"

namespace mathrl::lua {

namespace {

using Clock = std::chrono::steady_clock;

// Peak bytes the CUDA caching allocator handed out since the last reset (0 on CPU).
void reset_peak_memory(const torch::Device& d) {
#ifdef MATHRL_RL_CUDA_STATS
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
#endif
  (void)d;
}
double peak_memory_gib(const torch::Device& d) {
#ifdef MATHRL_RL_CUDA_STATS
  if (d.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
    return static_cast<double>(stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) /
           double(1 << 30);
  }
#endif
  (void)d;
  return 0.0;
}
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct DrawnGroup {
  size_t prompt = 0;
  rl::RolloutGroup rollout;
  std::vector<reward_lua::RewardResult> rewards;
  bool zero_std = false;
  std::vector<std::vector<double>> step_rewards;  // per completion, when the recipe has step_rewards
  std::vector<std::vector<int>> step_ends;
};

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {  // population std, for metrics
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return v.empty() ? 0.0 : std::sqrt(s / static_cast<double>(v.size()));
}

std::vector<double> totals(const DrawnGroup& g) {
  std::vector<double> r;
  for (const auto& x : g.rewards) r.push_back(x.total);
  return r;
}

// The reward figures of reward_lua::summarize, as sums and counts that combine across ranks, plus
// the mean and std of the totals.
void add_reward_metrics(RankMetrics& rm, const std::vector<reward_lua::RewardResult>& results,
                        const std::vector<reward_lua::RewardSpec>& specs) {
  double total = 0, squares = 0;
  for (const auto& r : results) {
    total += r.total, squares += r.total * r.total;
    for (const auto& [k, v] : r.components) rm.add_mean("reward/" + k, v, 1);
    for (size_t j = 0; j < r.rewards.size() && j < specs.size(); ++j)
      if (!r.rewards[j].ok()) rm.add_sum(str("reward_failures/", specs[j].name, "/", call_status_name(r.rewards[j].status)), 1);
  }
  const double n = static_cast<double>(results.size());
  rm.add_mean("reward/total", total, n);
  rm.add_mean("reward/mean", total, n);
  rm.add_std("reward/std", total, squares, n);
}

// One iteration's update figures over all ranks: the loss summed (each rank's is a share of the
// global loss), the token means weighted by each rank's tokens.
rl::UpdateStats global_update_stats(dist::ProcessGroup* group, const rl::UpdateStats& u, const torch::Device& device) {
  const double t = u.tokens;
  auto v = sum_across(group, {u.loss, u.kl * t, u.pg_loss * t, u.ratio_mean * t, u.clip_low * t, u.clip_high * t,
                              u.entropy * t, t}, device);
  rl::UpdateStats g = u;
  const double n = std::max(1.0, v[7]);
  g.loss = v[0], g.kl = v[1] / n, g.pg_loss = v[2] / n, g.ratio_mean = v[3] / n, g.clip_low = v[4] / n;
  g.clip_high = v[5] / n, g.entropy = v[6] / n, g.tokens = v[7];
  return g;
}

// The critic's figures over all ranks: the loss summed, the token means weighted by tokens.
rl::ValueStats global_value_stats(dist::ProcessGroup* group, const rl::ValueStats& v, const torch::Device& device) {
  const double t = v.tokens;
  auto g = sum_across(group, {v.loss, v.value_mean * t, v.clip_fraction * t, t}, device);
  const double n = std::max(1.0, g[3]);
  return rl::ValueStats{g[0], g[1] / n, g[2] / n, g[3]};
}

// Without a KL or entropy term, a completion whose advantages are all zero (every sample of its
// group got the same reward) adds exactly nothing to the loss or its gradient, so it is left out of
// the update's forward and backward; the loss normalizers stay those of the whole batch, so the
// update is the same. (Dr. GRPO without a fixed length normalizes by the batch's longest
// completion, which leaving completions out could change: nothing is skipped then.)
void skip_zero_advantage_sequences(std::vector<rl::TrainSequence>& seqs, std::vector<std::vector<float>>& old_lp,
                                   rl::UpdateOptions& uo, RankMetrics& rm) {
  const auto& lo = uo.loss;
  if (lo.beta != 0.0 || lo.entropy_coef != 0.0 || seqs.empty()) return;
  if (lo.loss_type == rl::LossAggregation::DrGrpo && lo.max_completion_length <= 0) return;
  if (uo.global_sequences <= 0) {  // one process: this batch's own normalizers, fixed before skipping
    uo.global_sequences = static_cast<double>(seqs.size());
    uo.global_tokens = std::max(1.0, rl::counted_tokens(seqs, uo.mask_truncated_completions));
  }
  std::vector<rl::TrainSequence> kept;
  std::vector<std::vector<float>> kept_lp;
  double skipped = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    bool zero = true;
    for (double a : seqs[i].advantages) zero = zero && a == 0.0;
    if (zero) {
      skipped += 1;
      continue;
    }
    kept.push_back(std::move(seqs[i]));
    if (!old_lp.empty()) kept_lp.push_back(std::move(old_lp[i]));
  }
  rm.add_mean("groups/zero_advantage_skipped_fraction", skipped, static_cast<double>(seqs.size()));
  seqs = std::move(kept);
  if (!old_lp.empty()) old_lp = std::move(kept_lp);
}

// Calls the recipe's `advantage` function on one group; fills one advantage vector per completion.
std::vector<std::vector<double>> lua_advantages(RunContext& ctx, const RlState& st, const DrawnGroup& g, long long step) {
  lua_State* L = ctx.recipe.L();
  const int top = lua_gettop(L);
  ctx.recipe.push("advantage");
  const auto& cs = g.rollout.completions;
  lua_createtable(L, 0, 9);
  push_numbers(L, totals(g));
  lua_setfield(L, -2, "rewards");
  lua_newtable(L);  // components = {name = {...}}
  for (const auto& [name, _] : g.rewards.front().components) {
    std::vector<double> v;
    for (const auto& r : g.rewards) {
      auto it = r.components.find(name);
      v.push_back(it == r.components.end() ? 0.0 : it->second);
    }
    push_numbers(L, v);
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "components");
  std::vector<double> lengths;
  lua_createtable(L, static_cast<int>(cs.size()), 0);
  for (size_t i = 0; i < cs.size(); ++i) {
    lengths.push_back(static_cast<double>(cs[i].ids.size()));
    lua_pushboolean(L, rl::is_truncated(cs[i]));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "truncated");
  push_numbers(L, lengths);
  lua_setfield(L, -2, "lengths");
  lua_createtable(L, static_cast<int>(cs.size()), 0);
  for (size_t i = 0; i < cs.size(); ++i) {
    lua_pushstring(L, cs[i].text.c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "completions");
  lua_createtable(L, static_cast<int>(cs.size()), 0);
  for (size_t i = 0; i < cs.size(); ++i) {
    push_numbers(L, std::vector<double>(cs[i].ids.begin(), cs[i].ids.end()));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "completion_ids");
  const RlPrompt& p = st.prompts[g.prompt];
  lua_pushstring(L, p.text.c_str());
  lua_setfield(L, -2, "prompt");
  lua_pushstring(L, p.answer.c_str());
  lua_setfield(L, -2, "answer");
  lua_pushinteger(L, step);
  lua_setfield(L, -2, "step");
  if (!g.step_rewards.empty()) {
    lua_createtable(L, static_cast<int>(cs.size()), 0);
    for (size_t i = 0; i < cs.size(); ++i) {
      push_numbers(L, g.step_rewards[i]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
    }
    lua_setfield(L, -2, "step_rewards");
    lua_createtable(L, static_cast<int>(cs.size()), 0);
    for (size_t i = 0; i < cs.size(); ++i) {
      push_numbers(L, std::vector<double>(g.step_ends[i].begin(), g.step_ends[i].end()));
      lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
    }
    lua_setfield(L, -2, "step_ends");
  }
  protected_call(L, 1, 1, "rl advantage function");
  if (!lua_istable(L, -1))
    throw RecipeError(str("rl: the advantage function must return a list (one entry per completion), got ",
                          luaL_typename(L, -1)));
  const int res = lua_gettop(L);
  if (luaL_len(L, res) != static_cast<lua_Integer>(cs.size()))
    throw RecipeError(str("rl: the advantage function returned ", luaL_len(L, res), " entries for ", cs.size(),
                          " completions"));
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < cs.size(); ++i) {
    lua_rawgeti(L, res, static_cast<lua_Integer>(i + 1));
    if (lua_type(L, -1) == LUA_TNUMBER) {
      out.push_back({lua_tonumber(L, -1)});
    } else if (lua_istable(L, -1)) {
      out.push_back(number_list(L, lua_gettop(L), "advantage"));
      if (out.back().size() != cs[i].ids.size())
        throw RecipeError(str("rl: the advantage function gave completion ", i + 1, " ", out.back().size(),
                              " per-token advantages for ", cs[i].ids.size(), " tokens"));
    } else {
      throw RecipeError(str("rl: advantage entry ", i + 1, " must be a number or a list of numbers, got ",
                            luaL_typename(L, -1)));
    }
    for (double a : out.back())
      if (!std::isfinite(a)) throw RecipeError(str("rl: advantage entry ", i + 1, " is not finite"));
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return out;
}

// The recipe's step_rewards(sample) for every completion of the group (process supervision).
void score_steps(RunContext& ctx, const RlState& st, DrawnGroup& g, long long step) {
  lua_State* L = ctx.recipe.L();
  const int top = lua_gettop(L);
  const RlPrompt& p = st.prompts[g.prompt];
  for (size_t i = 0; i < g.rollout.completions.size(); ++i) {
    const auto& c = g.rollout.completions[i];
    ctx.recipe.push("step_rewards");
    lua_createtable(L, 0, 7);
    lua_pushstring(L, p.text.c_str());
    lua_setfield(L, -2, "prompt");
    lua_pushstring(L, (st.tokenizer ? c.text : join_ids(c.ids)).c_str());
    lua_setfield(L, -2, "completion");
    push_numbers(L, std::vector<double>(c.ids.begin(), c.ids.end()));
    lua_setfield(L, -2, "completion_ids");
    lua_pushstring(L, p.answer.c_str());
    lua_setfield(L, -2, "answer");
    lua_pushnumber(L, g.rewards[i].total);
    lua_setfield(L, -2, "reward");
    lua_pushinteger(L, step);
    lua_setfield(L, -2, "step");
    protected_call(L, 1, 1, "rl step_rewards function");
    const int res = lua_gettop(L);
    if (!lua_istable(L, res))
      throw RecipeError(str("rl: step_rewards must return {rewards = {...}, ends = {...}}, got ", luaL_typename(L, res)));
    lua_getfield(L, res, "rewards");
    if (!lua_istable(L, -1)) throw RecipeError("rl: step_rewards result needs a list 'rewards'");
    g.step_rewards.push_back(number_list(L, lua_gettop(L), "step_rewards"));
    lua_getfield(L, res, "ends");
    if (!lua_istable(L, -1)) throw RecipeError("rl: step_rewards result needs a list 'ends'");
    auto ends = number_list(L, lua_gettop(L), "step_rewards");
    g.step_ends.emplace_back(ends.begin(), ends.end());
    lua_settop(L, top);
  }
}

// Rollouts until `prompts_per_step` groups are kept, over all ranks (or the resample limit). Every
// rank draws the same prompts and rolls out its contiguous slice of them (whole groups); returns
// this rank's kept groups and sets `global_kept`. Fills generation/reward times in `m` and the
// group figures in `rm`.
std::vector<DrawnGroup> draw_groups(const RlSettings& s, RlState& st, long long step, std::map<std::string, double>& m,
                                    RankMetrics& rm, std::vector<reward_lua::RewardResult>& all_rewards, double& t_gen,
                                    double& t_reward, int64_t& generated_tokens, int64_t& global_kept) {
  const int rank = st.group ? st.group->rank() : 0, world = st.group ? st.group->world_size() : 1;
  const torch::Device device = st.policy->lm_head_weight().device();
  std::vector<DrawnGroup> kept;
  int64_t need = s.prompts_per_step, drawn_groups = 0, zero_std = 0;
  int rounds = 0;
  for (;; ++rounds) {
    std::vector<rl::RolloutPrompt> rp;
    std::vector<size_t> which;
    const auto [mine_begin, mine_end] = rl::shard_groups(need, rank, world);
    for (int64_t k = 0; k < need; ++k) {
      size_t idx = st.stream->at(st.cursor);
      if (k >= mine_begin && k < mine_end) {
        rp.push_back({st.prompts[idx].ids, rl::prompt_seed(s.seed, st.cursor)});
        which.push_back(idx);
      }
      ++st.cursor;
    }
    auto t0 = Clock::now();
    std::vector<rl::RolloutGroup> groups;
    if (!rp.empty()) groups = rl::generate_groups(*st.engine, rp, s.rollout);
    st.backend->allocate(1, 1);  // give the KV cache's memory back to the update
    t_gen += seconds_since(t0);
    std::vector<reward_lua::Sample> samples;
    for (size_t g = 0; g < groups.size(); ++g) {
      const RlPrompt& p = st.prompts[which[g]];
      for (const auto& c : groups[g].completions) {
        generated_tokens += static_cast<int64_t>(c.ids.size());
        reward_lua::Sample smp;
        smp.prompt = p.text;
        smp.completion = st.tokenizer ? c.text : join_ids(c.ids);
        smp.prompt_ids.assign(p.ids.begin(), p.ids.end());
        smp.completion_ids.assign(c.ids.begin(), c.ids.end());
        smp.reference = p.answer;
        smp.record = p.record;
        samples.push_back(std::move(smp));
      }
    }
    t0 = Clock::now();
    std::vector<reward_lua::RewardResult> results;
    if (!samples.empty()) results = st.rewards->score(samples, step);
    t_reward += seconds_since(t0);
    const size_t G = static_cast<size_t>(s.rollout.num_generations);
    for (size_t g = 0; g < groups.size(); ++g) {
      DrawnGroup d;
      d.prompt = which[g];
      d.rollout = std::move(groups[g]);
      d.rewards.assign(results.begin() + static_cast<long>(g * G), results.begin() + static_cast<long>((g + 1) * G));
      auto r = totals(d);
      d.zero_std = std::all_of(r.begin(), r.end(), [&](double x) { return x == r.front(); });
      ++drawn_groups;
      zero_std += d.zero_std;
      if (!(s.dynamic_sampling && d.zero_std)) kept.push_back(std::move(d));
    }
    all_rewards.insert(all_rewards.end(), results.begin(), results.end());
    global_kept = static_cast<int64_t>(sum_across(st.group.get(), {static_cast<double>(kept.size())}, device)[0]);
    if (!s.dynamic_sampling || global_kept >= s.prompts_per_step || rounds >= s.max_resample) break;
    need = s.prompts_per_step - global_kept;
  }
  rm.add_mean("groups/zero_std_fraction", static_cast<double>(zero_std), static_cast<double>(drawn_groups));
  m["groups/resample_rounds"] = rounds;
  rm.add_sum("groups/kept", static_cast<double>(kept.size()));
  return kept;
}

}  // namespace

std::map<std::string, double> rl_step(RunContext& ctx, const RlSettings& s, RlState& st, long long step) {
  const auto t_step = Clock::now();
  const torch::Device device = st.policy->lm_head_weight().device();
  reset_peak_memory(device);
  std::map<std::string, double> m;
  RankMetrics rm;  // figures of this rank's slice, combined over ranks at the end (every rank reports the global batch)
  dist::ProcessGroup* group = st.group.get();
  const bool data_parallel = group && group->world_size() > 1;
  auto finish = [&] {
    for (const auto& [k, v] : rm.reduce(group, device)) m[k] = v;
    m["time/step"] = seconds_since(t_step);
    return m;
  };
  st.rewards->check_for_updates(step);
  double t_gen = 0, t_reward = 0;
  int64_t generated = 0, global_kept = 0;
  std::vector<reward_lua::RewardResult> all_rewards;
  const sampler::EngineStats before = st.engine->stats();
  std::vector<DrawnGroup> groups = draw_groups(s, st, step, m, rm, all_rewards, t_gen, t_reward, generated, global_kept);
  // The share of sampled rows that ran through the model (identical samples decode once).
  const int64_t sampled_rows = st.engine->stats().sampled_rows - before.sampled_rows;
  if (sampled_rows > 0)
    m["generate/decoded_row_fraction"] =
        static_cast<double>(st.engine->stats().decoded_rows - before.decoded_rows) / static_cast<double>(sampled_rows);
  add_reward_metrics(rm, all_rewards, st.rewards->specs());
  if (device.is_cuda()) m["memory/peak_generate_gib"] = peak_memory_gib(device);
  reset_peak_memory(device);
  m["time/generate"] = t_gen;
  m["time/reward"] = t_reward;
  m["tokens_per_s/generate"] = t_gen > 0 ? static_cast<double>(generated) / t_gen : 0.0;
  if (global_kept == 0) {
    ctx.log.warn(str("step ", step, ": every group had zero reward variance after ", s.max_resample,
                     " resampling rounds; no update"));
    return finish();
  }

  const auto t_update = Clock::now();
  // Advantages (GRPO family) per group; PPO computes them from the critic below.
  std::vector<std::vector<std::vector<double>>> adv(groups.size());
  const bool ppo = s.algorithm == "ppo";
  if (!ppo) {
    if (s.step_rewards)
      for (auto& g : groups) score_steps(ctx, st, g, step);
    if (s.advantage.empty()) {
      for (size_t g = 0; g < groups.size(); ++g) adv[g] = lua_advantages(ctx, st, groups[g], step);
    } else if (s.advantage == "process") {
      for (size_t g = 0; g < groups.size(); ++g) {
        std::vector<int> lengths;
        for (const auto& c : groups[g].rollout.completions) lengths.push_back(static_cast<int>(c.ids.size()));
        adv[g] = rl::process_supervision_advantages(groups[g].step_rewards, groups[g].step_ends, lengths);
      }
    } else if (s.advantage == "reinforce++" && data_parallel) {
      // rl::reinforce_pp_baseline_advantages over every rank's groups: the centred rewards divided
      // by their std over the global batch.
      double c_sum = 0, c_squares = 0, c_count = 0;
      for (size_t g = 0; g < groups.size(); ++g) {
        auto r = totals(groups[g]);
        const double mean = mean_of(r);
        for (double x : r) {
          adv[g].push_back({x - mean});
          c_sum += x - mean, c_squares += (x - mean) * (x - mean), c_count += 1;
        }
      }
      auto t = sum_across(group, {c_sum, c_squares, c_count}, device);
      // The sample std (n - 1), as rl::reinforce_pp_baseline_advantages takes it.
      const double sd = t[2] < 2 ? 1e-4 : std::sqrt(std::max(0.0, (t[1] - t[0] * t[0] / t[2]) / (t[2] - 1))) + 1e-4;
      for (auto& g : adv)
        for (auto& a : g) a[0] /= sd;
    } else if (s.advantage == "reinforce++") {
      std::vector<std::vector<double>> all;
      for (const auto& g : groups) all.push_back(totals(g));
      auto a = rl::reinforce_pp_baseline_advantages(all);
      for (size_t g = 0; g < groups.size(); ++g)
        for (double x : a[g]) adv[g].push_back({x});
    } else {
      for (size_t g = 0; g < groups.size(); ++g) {
        auto r = totals(groups[g]);
        auto a = s.advantage == "rloo" ? rl::rloo_advantages(r)
                                       : rl::grpo_advantages(r, rl::GroupAdvantageOptions{s.scale_rewards, 1e-4});
        for (double x : a) adv[g].push_back({x});
      }
    }
  }

  std::vector<rl::TrainSequence> seqs;
  std::vector<double> final_reward;
  double len_sum = 0, len_max = 0, truncated = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& cs = groups[g].rollout.completions;
    for (size_t i = 0; i < cs.size(); ++i) {
      rl::TrainSequence t;
      t.prompt_ids = st.prompts[groups[g].prompt].ids;
      t.completion_ids = cs[i].ids;
      t.sampler_logprobs = cs[i].logprobs;
      t.truncated = rl::is_truncated(cs[i]);
      t.group = static_cast<int64_t>(g);
      if (!ppo) t.advantages = adv[g][i];
      final_reward.push_back(groups[g].rewards[i].total);
      len_sum += static_cast<double>(cs[i].ids.size());
      len_max = std::max(len_max, static_cast<double>(cs[i].ids.size()));
      truncated += t.truncated;
      seqs.push_back(std::move(t));
    }
  }
  const double n_seq = static_cast<double>(seqs.size());
  rm.add_mean("completion/length_mean", len_sum, n_seq);
  if (!seqs.empty()) rm.add_max("completion/length_max", len_max);
  rm.add_mean("completion/truncated_fraction", truncated, n_seq);

  const double beta = s.update.loss.beta;
  std::vector<std::vector<float>> ref_lp, old_lp;
  if (beta != 0.0 && st.ref_shards) {
    // Every forward of the sharded reference is collective: all ranks score in the same number of
    // passes (the most any rank needs), gathering one layer at a time.
    at::Tensor passes = at::full({1}, static_cast<double>(rl::plan_microbatches(seqs, s.update.token_budget).size()),
                                 at::TensorOptions().dtype(at::kFloat).device(st.policy->lm_head_weight().device()));
    st.group->all_reduce_max(passes);
    st.ref_shards->begin_step();
    ref_lp = rl::completion_logprobs(st.ref, seqs, s.update.temperature, s.update.token_budget, 0,
                                     static_cast<int64_t>(passes.item<float>()));
    st.ref_shards->finish_step();
  } else if (beta != 0.0 && !seqs.empty()) {
    ref_lp = rl::completion_logprobs(st.ref, seqs, s.update.temperature, s.update.token_budget);
  }
  // PPO needs the trainer's log-probs for its KL reward, so it always recomputes.
  const bool from_sampler = s.old_logprobs == "sampler" && !ppo;
  const bool recompute_old = !from_sampler && (s.num_iterations > 1 || ppo || s.old_logprobs == "recompute");
  if (from_sampler) {
    for (const auto& t : seqs) {
      MATHRL_CHECK(t.sampler_logprobs.size() == t.completion_ids.size(), "the engine returned no log-probs");
      old_lp.push_back(t.sampler_logprobs);
    }
  }
  if (recompute_old) {
    if (!seqs.empty()) old_lp = rl::completion_logprobs(st.policy, seqs, s.update.temperature, s.update.token_budget);
    double d = 0, n = 0;  // how far the sampler's numbers are from the trainer's: mean |difference|
    for (size_t i = 0; i < seqs.size(); ++i)
      for (size_t t = 0; t < seqs[i].sampler_logprobs.size() && t < old_lp[i].size(); ++t)
        d += std::abs(seqs[i].sampler_logprobs[t] - old_lp[i][t]), n += 1;
    rm.add_mean("sampler_logprob_abs_diff", d, n);
  }

  rl::UpdateOptions uo = s.update;
  if (ppo) {
    // Per-token reward: -beta * (log pi - log pi_ref) (the KL penalty, k1), plus the sequence's
    // reward on its last token; GAE over the critic's values; advantages whitened over the batch.
    std::vector<std::vector<float>> values;
    if (!seqs.empty()) values = rl::completion_values(st.critic, seqs, s.update.token_budget);
    std::vector<double> all_adv;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const size_t C = seqs[i].completion_ids.size();
      std::vector<double> r(C, 0.0), v(values[i].begin(), values[i].end());
      for (size_t t = 0; t < C; ++t) r[t] = beta != 0.0 ? -beta * (old_lp[i][t] - ref_lp[i][t]) : 0.0;
      r[C - 1] += final_reward[i];
      rl::Gae e = rl::gae(r, v, s.gamma, s.lam);
      seqs[i].advantages = e.advantages;
      seqs[i].returns = e.returns;
      seqs[i].old_values = values[i];
      all_adv.insert(all_adv.end(), e.advantages.begin(), e.advantages.end());
    }
    double am = mean_of(all_adv), as = std_of(all_adv) + 1e-8;
    if (data_parallel) {  // whitened over the global batch
      double a_sum = 0, a_squares = 0;
      for (double a : all_adv) a_sum += a, a_squares += a * a;
      auto t = sum_across(group, {a_sum, a_squares, static_cast<double>(all_adv.size())}, device);
      am = t[2] > 0 ? t[0] / t[2] : 0.0;
      as = std::sqrt(std::max(0.0, t[2] > 0 ? t[1] / t[2] - am * am : 0.0)) + 1e-8;
    }
    for (auto& t : seqs)
      for (double& a : t.advantages) a = (a - am) / as;
    uo.loss.beta = 0.0;  // the KL is in the reward
  }
  {
    double a_sum = 0, a_squares = 0, a_count = 0;
    for (const auto& t : seqs)
      for (double a : t.advantages) {
        a_sum += a, a_squares += a * a, a_count += 1;
        rm.add_min("advantage/min", a);
        rm.add_max("advantage/max", a);
      }
    rm.add_mean("advantage/mean", a_sum, a_count);
    rm.add_std("advantage/std", a_sum, a_squares, a_count);
  }
  if (data_parallel) {
    // Each rank's loss is normalized by the global batch, so the summed gradients are the global ones.
    const double counted = rl::counted_tokens(seqs, uo.mask_truncated_completions);
    auto totals = sum_across(group, {static_cast<double>(seqs.size()), counted}, device);
    uo.global_sequences = totals[0];
    uo.global_tokens = std::max(1.0, totals[1]);
  }
  double critic_tokens = 0;  // the value loss's normalizer over all ranks (0: this batch's own)
  if (ppo && data_parallel) {
    for (const auto& t : seqs) critic_tokens += static_cast<double>(t.completion_ids.size());
    critic_tokens = std::max(1.0, sum_across(group, {critic_tokens}, device)[0]);
  }

  skip_zero_advantage_sequences(seqs, old_lp, uo, rm);

  const double lr = ctx.recipe.number_at("learning_rate", step);
  double grad_norm = 0, critic_grad_norm = 0;
  rl::UpdateStats sum;
  rl::ValueStats vsum;
  double skipped = 0;
  for (int it = 0; it < s.num_iterations; ++it) {
    st.policy_zero_grad();
    rl::UpdateStats u;
    if (!seqs.empty())  // a rank without sequences still takes part in the gradient sum (with zeros)
      u = rl::accumulate_policy_gradients(st.policy, seqs, old_lp.empty() ? nullptr : &old_lp,
                                          uo.loss.beta != 0.0 ? &ref_lp : nullptr, uo);
    if (data_parallel) u = global_update_stats(group, u, device);
    train::StepResult r = st.policy_step(lr, u.loss);
    grad_norm += r.grad_norm / s.num_iterations;
    skipped += r.applied ? 0 : 1;
    sum.loss += u.loss / s.num_iterations, sum.kl += u.kl / s.num_iterations;
    sum.pg_loss += u.pg_loss / s.num_iterations, sum.ratio_mean += u.ratio_mean / s.num_iterations;
    sum.clip_low += u.clip_low / s.num_iterations, sum.clip_high += u.clip_high / s.num_iterations;
    sum.entropy += u.entropy / s.num_iterations;
    sum.tokens = u.tokens;
    if (ppo) {
      st.critic_optimizer->zero_grad();
      rl::ValueStats v;
      if (!seqs.empty())
        v = rl::accumulate_value_gradients(st.critic, seqs, s.cliprange_value, s.update.token_budget, critic_tokens);
      if (data_parallel) v = global_value_stats(group, v, device);
      train::StepResult cr = st.critic_optimizer->step(ctx.recipe.number_at(s.critic_lr_field, step), v.loss);
      critic_grad_norm += cr.grad_norm / s.num_iterations;
      vsum.loss += v.loss / s.num_iterations, vsum.value_mean += v.value_mean / s.num_iterations;
      vsum.clip_fraction += v.clip_fraction / s.num_iterations;
    }
  }
  const double t_upd = seconds_since(t_update);
  m["loss"] = sum.loss;
  m["pg_loss"] = sum.pg_loss;
  if (beta != 0.0 && !ppo) m["kl"] = sum.kl;
  if (ppo && beta != 0.0) {
    double kl = 0, n = 0;
    for (size_t i = 0; i < seqs.size(); ++i)
      for (size_t t = 0; t < old_lp[i].size(); ++t) kl += old_lp[i][t] - ref_lp[i][t], n += 1;
    rm.add_mean("kl", kl, n);
  }
  m["ratio_mean"] = sum.ratio_mean;
  m["clip_fraction"] = sum.clip_low + sum.clip_high;
  m["clip_fraction/low"] = sum.clip_low;
  m["clip_fraction/high"] = sum.clip_high;
  m["entropy"] = sum.entropy;
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["skipped_steps"] = skipped;
  m["tokens/trained"] = sum.tokens;
  if (ppo) {
    m["value_loss"] = vsum.loss;
    m["value_mean"] = vsum.value_mean;
    m["value_clip_fraction"] = vsum.clip_fraction;
    m["critic_grad_norm"] = critic_grad_norm;
  }
  m["time/update"] = t_upd;
  m["tokens_per_s/update"] = t_upd > 0 ? sum.tokens * s.num_iterations / t_upd : 0.0;
  if (device.is_cuda()) m["memory/peak_update_gib"] = peak_memory_gib(device);  // reference, old log-probs, update
  m["prompt_cursor"] = static_cast<double>(st.cursor);
  return finish();
}

}  // namespace mathrl::lua
