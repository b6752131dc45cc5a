#include "rl/rl_stage.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>

#include <torch/torch.h>

#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "dist/data_parallel.h"
#include "dist/fsdp.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "reward/reward_recipe.h"
#include "rl/advantages.h"
#include "rl/policy_loss.h"
#include "rl/rl_run.h"
#include "train/checkpoint.h"

namespace mathrl::lua {

RlState::~RlState() = default;

void RlState::policy_zero_grad() {
  if (zero_optimizer) zero_optimizer->zero_grad();
  else optimizer->zero_grad();
}

train::StepResult RlState::policy_step(double lr, double loss) {
  return zero_optimizer ? zero_optimizer->step(lr, loss) : optimizer->step(lr, loss);
}

namespace {

Schema make_rl_schema() {
  Schema s{"rl", common_stage_fields("rl")};
  auto& f = s.fields;
  f.insert(f.end(), {
    // Models.
    {"model", FieldType::Any, "", "policy: a Hugging Face model directory, or a table of config.json keys (random init)", nullptr, {}, true},
    {"model_seed", FieldType::Int, "", "seed of a random-init model (default: seed)"},
    {"tokenizer", FieldType::String, "", "tokenizer path; without one, prompts give prompt_ids and texts are ids joined by spaces"},
    {"add_bos", FieldType::Bool, "true", "prepend the tokenizer's BOS to tokenized prompts"},
    {"ref_model", FieldType::String, "", "reference model directory (default: a frozen copy of the initial policy)"},
    {"critic_model", FieldType::String, "", "PPO critic's initial weights (default: the initial policy) plus a fresh value head"},
    {"dtype", FieldType::String, "'float32'", "parameter dtype of policy, reference and critic", nullptr, {"float32", "bfloat16", "float16"}},
    {"gradient_checkpointing", FieldType::Bool, "false", "recompute each layer in backward (less activation memory)"},
    // Prompts.
    {"data", FieldType::Any, "", "JSONL path or list of paths (as given, else beside the recipe), or a list of record tables", nullptr, {}, true},
    {"prompt", FieldType::Function, "", "function(ex) -> {prompt = text or prompt_ids = {...}, answer = reference} or nil to skip", nullptr, {}, true},
    {"shuffle", FieldType::Bool, "true", "visit prompts in an order shuffled per epoch by the seed"},
    {"max_prompts", FieldType::Int, "0", "keep only the first N mapped prompts (0 = all)"},
    // Loop.
    {"algorithm", FieldType::String, "'grpo'", "grpo (group advantages, no critic) or ppo (learned critic, GAE)", nullptr, {"grpo", "ppo"}},
    {"advantage", FieldType::Any, "'grpo'", "grpo | rloo | reinforce++ | process, or function(group) -> one advantage (or a per-token list) per completion"},
    {"step_rewards", FieldType::Function, "", "process supervision: function(sample) -> {rewards = {...}, ends = {...}}, a reward per reasoning step and the token index (1..#completion_ids, increasing) where each step ends"},
    {"steps", FieldType::Int, "100", "rollout batches (each gives num_iterations optimizer steps)"},
    {"prompts_per_step", FieldType::Int, "16", "prompts per rollout batch (batch = prompts_per_step x num_generations completions)"},
    {"num_generations", FieldType::Int, "8", "G: completions per prompt"},
    {"num_iterations", FieldType::Int, "1", "mu: optimizer steps on each rollout batch"},
    {"max_completion_length", FieldType::Int, "256", "tokens per completion at most"},
    {"temperature", FieldType::Number, "1.0", "sampling temperature (log-probs are taken at it too)"},
    {"top_p", FieldType::Number, "1.0", "nucleus sampling (1 = off)"},
    {"top_k", FieldType::Int, "0", "top-k sampling (0 = off)"},
    {"stop", FieldType::List, "{}", "stop strings (need a tokenizer)"},
    {"max_batch", FieldType::Int, "64", "decode slots of the rollout engine"},
    // Objective.
    {"beta", FieldType::Number, "0.04", "KL coefficient to the reference (0: no reference model)"},
    {"kl_estimator", FieldType::String, "'k3'", "KL estimator", nullptr, {"k1", "k2", "k3"}},
    {"epsilon", FieldType::Number, "0.2", "lower clip range of the ratio"},
    {"epsilon_high", FieldType::Number, "", "upper clip range (default: epsilon)"},
    {"loss_type", FieldType::String, "'grpo'", "aggregation: grpo (per-sequence mean), dapo (token mean), dr_grpo (constant normalizer)",
     nullptr, {"grpo", "dapo", "dr_grpo"}},
    {"scale_rewards", FieldType::Bool, "true", "grpo advantages divided by the group's reward std"},
    {"mask_truncated_completions", FieldType::Bool, "false", "completions cut by max_completion_length get no loss"},
    {"dynamic_sampling", FieldType::Bool, "false", "drop groups whose rewards are all equal and draw new prompts instead"},
    {"max_resample", FieldType::Int, "3", "dynamic sampling: extra rollout rounds per step at most"},
    {"entropy_coef", FieldType::Number, "0.0", "entropy bonus coefficient"},
    {"old_logprobs", FieldType::String, "'auto'", "ratio denominator: auto (on-policy = current detached when num_iterations is 1, else recomputed by the training forward), recompute, or sampler (the engine's own log-probs)",
     nullptr, {"auto", "recompute", "sampler"}},
    {"token_budget", FieldType::Int, "16384", "padded tokens per training micro-batch"},
    // Optimizer.
    {"learning_rate", FieldType::NumberOrFunction, "1e-6", "AdamW learning rate (or a function of the step)"},
    {"weight_decay", FieldType::Number, "0.0", "AdamW decoupled weight decay"},
    {"adam_beta1", FieldType::Number, "0.9", "AdamW beta1"},
    {"adam_beta2", FieldType::Number, "0.95", "AdamW beta2"},
    {"adam_epsilon", FieldType::Number, "1e-8", "AdamW epsilon"},
    {"max_grad_norm", FieldType::Number, "1.0", "global gradient-norm clip (<= 0: off)"},
    {"zero_stage", FieldType::Int, "0", "data parallel: 0 = every rank keeps the policy's whole optimizer state; "
     "1 = AdamW state and masters sharded across ranks (ZeRO-1); 2 = gradients too (ZeRO-2)"},
    {"shard_reference", FieldType::Bool, "false", "data parallel: each rank keeps 1/N of the reference model "
     "(ZeRO-3 style) and gathers one layer at a time while scoring"},
    // PPO.
    {"gamma", FieldType::Number, "1.0", "PPO: discount"},
    {"lam", FieldType::Number, "0.95", "PPO: GAE lambda"},
    {"cliprange_value", FieldType::Number, "0.2", "PPO: value clip range (<= 0: unclipped)"},
    {"critic_learning_rate", FieldType::NumberOrFunction, "", "PPO: critic learning rate (default: learning_rate)"},
    // Checkpoints.
    {"checkpoint_every", FieldType::Int, "0", "save a checkpoint every N steps (0: only at the end and on SIGINT)"},
    {"keep_checkpoints", FieldType::Int, "3", "newest checkpoints kept"},
  });
  auto rewards = reward_lua::reward_recipe_fields();
  f.insert(f.end(), rewards.begin(), rewards.end());
  return s;
}
const Schema kRlSchema = make_rl_schema();

std::atomic<int> g_interrupted{0};
// The first signal asks for a clean stop after the current step; a second one stops at once
// (the default action), leaving the last checkpoint, which is written atomically, in charge.
extern "C" void on_sigint(int sig) {
  if (g_interrupted.exchange(1) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

// SIGINT/SIGTERM set a flag that the loop checks after each step (save, then exit 130).
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device("cuda") : torch::Device("cpu");
  return torch::Device(name);
}

// The policy's initial weights: a model directory, or a config table (random init).
model::Decoder initial_policy(const Recipe& recipe, at::ScalarType dtype, const torch::Device& device) {
  lua_State* L = recipe.L();
  recipe.push("model");
  if (lua_type(L, -1) == LUA_TSTRING) {
    std::string dir = lua_tostring(L, -1);
    lua_pop(L, 1);
    std::string base = std::filesystem::path(recipe.path()).parent_path().string();
    if (!std::filesystem::exists(dir) && !base.empty() && std::filesystem::exists(base + "/" + dir)) dir = base + "/" + dir;
    return model::load_decoder(dir, dtype, device);
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    throw RecipeError("rl: 'model' must be a model directory or a table of config.json keys");
  }
  std::string json = "{";
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING) throw RecipeError("rl: model config keys must be names");
    std::string key = lua_tostring(L, -2), value;
    if (lua_isinteger(L, -1)) value = std::to_string(lua_tointeger(L, -1));
    else if (lua_type(L, -1) == LUA_TNUMBER) value = str(lua_tonumber(L, -1));
    else if (lua_isboolean(L, -1)) value = lua_toboolean(L, -1) ? "true" : "false";
    else if (lua_type(L, -1) == LUA_TSTRING) value = str("\"", lua_tostring(L, -1), "\"");
    else throw RecipeError(str("rl: model config value '", key, "' must be a number, boolean or string"));
    json += str(json.size() > 1 ? "," : "", "\"", key, "\":", value);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  json += "}";
  uint64_t seed = static_cast<uint64_t>(recipe.has("model_seed") ? recipe.integer("model_seed") : recipe.integer("seed"));
  return model::random_decoder(model::parse_config(json, "rl model config"), seed, dtype, device);
}

void freeze(model::Decoder& m) {
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  m->eval();
}

RlSettings read_settings(const Recipe& r) {
  RlSettings s;
  s.algorithm = r.string("algorithm");
  lua_State* L = r.L();
  r.push("advantage");
  if (lua_type(L, -1) == LUA_TSTRING) {
    s.advantage = lua_tostring(L, -1);
    std::vector<std::string> known = rl::advantage_names();
    if (std::find(known.begin(), known.end(), s.advantage) == known.end())
      throw RecipeError(str("rl: unknown advantage '", s.advantage, "' (expected grpo, rloo, reinforce++, process or a function)",
                            did_you_mean(s.advantage, known)));
    if (s.advantage == "process" && !r.has("step_rewards"))
      throw RecipeError("rl: advantage = 'process' needs step_rewards = function(sample) -> {rewards = {...}, ends = {...}}");
  } else if (lua_type(L, -1) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    throw RecipeError("rl: 'advantage' must be a name (grpo, rloo, reinforce++) or a function(group)");
  }
  lua_pop(L, 1);
  s.step_rewards = r.has("step_rewards");
  if (s.step_rewards && s.algorithm == "ppo") throw RecipeError("rl: step_rewards are for GRPO's process supervision, not ppo");
  s.old_logprobs = r.string("old_logprobs");
  s.scale_rewards = r.boolean("scale_rewards");
  s.prompts_per_step = r.integer("prompts_per_step");
  s.num_iterations = static_cast<int>(r.integer("num_iterations"));
  s.dynamic_sampling = r.boolean("dynamic_sampling");
  s.max_resample = static_cast<int>(r.integer("max_resample"));
  s.gamma = r.number("gamma");
  s.lam = r.number("lam");
  s.cliprange_value = r.number("cliprange_value");
  s.seed = static_cast<uint64_t>(r.integer("seed"));
  if (r.has("critic_learning_rate")) s.critic_lr_field = "critic_learning_rate";
  auto& ro = s.rollout;
  ro.num_generations = static_cast<int>(r.integer("num_generations"));
  ro.max_completion_length = static_cast<int>(r.integer("max_completion_length"));
  ro.sampling.temperature = r.number("temperature");
  ro.sampling.top_p = r.number("top_p");
  ro.sampling.top_k = r.integer("top_k");
  ro.sampling.validate();
  r.push("stop");
  for (lua_Integer i = 1, n = luaL_len(L, -1); i <= n; ++i) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) == LUA_TSTRING) ro.stop.push_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  auto& uo = s.update;
  uo.loss.beta = r.number("beta");
  uo.loss.epsilon = r.number("epsilon");
  uo.loss.epsilon_high = r.has("epsilon_high") ? r.number("epsilon_high") : uo.loss.epsilon;
  uo.loss.kl = rl::parse_kl_estimator(r.string("kl_estimator"));
  uo.loss.loss_type = rl::parse_loss_type(r.string("loss_type"));
  uo.loss.max_completion_length = ro.max_completion_length;
  uo.loss.entropy_coef = r.number("entropy_coef");
  uo.temperature = ro.sampling.temperature;
  uo.token_budget = r.integer("token_budget");
  uo.mask_truncated_completions = r.boolean("mask_truncated_completions");
  auto positive = [](long long v, const char* name) {
    if (v < 1) throw RecipeError(str("rl: ", name, " must be >= 1 (got ", v, ")"));
  };
  positive(s.prompts_per_step, "prompts_per_step");
  positive(s.num_iterations, "num_iterations");
  positive(ro.num_generations, "num_generations");
  positive(ro.max_completion_length, "max_completion_length");
  positive(uo.token_budget, "token_budget");
  positive(r.integer("steps"), "steps");
  if (s.algorithm == "grpo" && ro.num_generations < 2)
    throw RecipeError("rl: grpo needs num_generations >= 2 (a group baseline)");
  return s;
}

train::AdamWOptions adam_options(const Recipe& r) {
  train::AdamWOptions o;
  o.beta1 = r.number("adam_beta1");
  o.beta2 = r.number("adam_beta2");
  o.eps = r.number("adam_epsilon");
  o.weight_decay = r.number("weight_decay");
  o.clip = r.number("max_grad_norm");
  return o;
}

std::string format_step_line(long long step, long long steps, const std::map<std::string, double>& m) {
  auto get = [&](const char* k) {
    auto it = m.find(k);
    return it == m.end() ? 0.0 : it->second;
  };
  return str("step ", step, "/", steps, " reward ", get("reward/mean"), " (std ", get("reward/std"), ") kl ", get("kl"),
             " clip ", get("clip_fraction"), " len ", get("completion/length_mean"), " grad ", get("grad_norm"),
             " gen ", get("time/generate"), "s upd ", get("time/update"), "s");
}

int run_rl(RunContext& ctx) {
  const Recipe& recipe = ctx.recipe;
  RlSettings s = read_settings(recipe);
  const long long steps = recipe.integer("steps");
  // Ranks (data parallelism) from the environment, as the base and instruct stages do.
  const dist::Rendezvous rv = dist::rendezvous_from_env();
  torch::Device device = resolve_device(recipe.string("device"));
  if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(rv.local_rank));
  at::ScalarType dtype = model::parse_dtype(recipe.string("dtype"));
  torch::manual_seed(s.seed);

  RlState st;
  if (rv.world_size > 1) st.group = dist::ProcessGroup::create(rv);
  const bool main_rank = rv.rank == 0;
  st.policy = initial_policy(recipe, dtype, device);
  st.policy->set_activation_checkpointing(recipe.boolean("gradient_checkpointing"));
  if (s.update.loss.beta != 0.0) {
    st.ref = recipe.has("ref_model") ? model::load_decoder(recipe.string("ref_model"), dtype, device)
                                     : initial_policy(recipe, dtype, device);
    freeze(st.ref);
  }
  if (s.algorithm == "ppo") {
    st.critic = recipe.has("critic_model") ? model::load_decoder(recipe.string("critic_model"), dtype, device)
                                           : initial_policy(recipe, dtype, device);
    torch::manual_seed(s.seed + 1);
    st.critic->add_value_head();
    st.critic->to(device, dtype);
    st.critic->set_activation_checkpointing(recipe.boolean("gradient_checkpointing"));
    st.critic_optimizer = std::make_unique<train::AdamW>(train::AdamW::for_module(*st.critic, adam_options(recipe)));
  }
  const int64_t zero_stage = recipe.integer("zero_stage");
  if (zero_stage < 0 || zero_stage > 2) throw RecipeError(str("rl: zero_stage must be 0, 1 or 2 (got ", zero_stage, ")"));
  if (zero_stage > 0 && !st.group) ctx.log.info("zero_stage has no effect in one process");
  if (recipe.boolean("shard_reference") && !st.group) ctx.log.info("shard_reference has no effect in one process");
  if (!(zero_stage > 0 && st.group))
    st.optimizer = std::make_unique<train::AdamW>(train::AdamW::for_module(*st.policy, adam_options(recipe)));
  if (st.group) {
    // Every rank starts from rank 0's weights; each rank's loss is a share of the global batch's
    // (UpdateOptions::global_*), so the optimizer sums the gradients in one flat all-reduce.
    dist::broadcast_parameters(*st.group, st.policy->parameters());
    if (st.ref) dist::broadcast_parameters(*st.group, st.ref->parameters());
    if (st.ref && recipe.boolean("shard_reference")) {
      st.ref_shards = std::make_unique<dist::FullyShardedDecoder>(st.group.get(), st.ref, dist::Reduction::Sum);
      ctx.log.info(str("reference model sharded over ", rv.world_size, " ranks: ", st.ref_shards->resident_bytes(),
                       " of ", st.ref_shards->full_bytes(), " bytes on this rank between scoring passes"));
    }
    dist::DataParallelOptions dpo;
    dpo.overlap = false;
    dpo.reduction = dist::Reduction::Sum;
    if (zero_stage > 0) {
      dist::ZeroOptions zo;
      zo.stage = static_cast<int>(zero_stage);
      zo.reduce_grads = true;
      zo.reduction = dist::Reduction::Sum;
      st.zero_optimizer = std::make_unique<dist::ShardedAdamW>(st.group.get(), dist::trainable_parameters(*st.policy),
                                                               adam_options(recipe), zo);
      ctx.log.info(str("ZeRO-", zero_stage, ": policy optimizer state of ",
                       st.zero_optimizer->partition().numel[static_cast<size_t>(rv.rank)], " parameters on this rank"));
    } else {
      st.data_parallel = std::make_unique<dist::DataParallel>(st.group.get(), dist::trainable_parameters(*st.policy), dpo);
      st.optimizer->set_grad_hook(st.data_parallel->grad_hook());
    }
    if (st.critic) {
      dist::broadcast_parameters(*st.group, st.critic->parameters());
      st.critic_data_parallel = std::make_unique<dist::DataParallel>(st.group.get(), dist::trainable_parameters(*st.critic), dpo);
      st.critic_optimizer->set_grad_hook(st.critic_data_parallel->grad_hook());
    }
  }

  int32_t bos = -1;
  if (recipe.has("tokenizer")) {
    std::string path = recipe.string("tokenizer");
    std::string base = std::filesystem::path(recipe.path()).parent_path().string();
    if (!std::filesystem::exists(path) && !base.empty() && std::filesystem::exists(base + "/" + path)) path = base + "/" + path;
    st.tokenizer = load_tokenizer(path);
    if (recipe.boolean("add_bos")) bos = st.tokenizer->bos_id();
  }
  if (!s.rollout.stop.empty() && !st.tokenizer) throw RecipeError("rl: stop strings need a tokenizer");
  st.prompts = load_rl_prompts(recipe, st.tokenizer.get(), bos, recipe.integer("max_prompts"));
  st.stream = std::make_unique<PromptStream>(st.prompts.size(), s.seed, recipe.boolean("shuffle"));

  reward_lua::RewardConfig rc = reward_lua::reward_config_from_recipe(recipe, "");
  if (rc.specs.empty()) throw RecipeError("rl: no rewards (add entries to 'rewards')");
  st.rewards = std::make_unique<reward_lua::RewardHost>(rc.specs, rc.options);

  const auto& cfg = st.policy->config();
  st.backend = std::make_unique<sampler::ModelBackend>(st.policy, device, dtype);
  sampler::EngineOptions eo;
  int64_t longest_prompt = 0;
  for (const auto& p : st.prompts) longest_prompt = std::max<int64_t>(longest_prompt, static_cast<int64_t>(p.ids.size()));
  // On a GPU the decode slots are capped by what the KV cache can get of the free memory.
  eo.max_batch = sampler::slots_for_memory_budget(cfg, dtype, device, longest_prompt + s.rollout.max_completion_length,
                                                  recipe.integer("max_batch"));
  if (cfg.eos_token_id >= 0) eo.eos_ids.push_back(static_cast<int32_t>(cfg.eos_token_id));
  if (st.tokenizer && st.tokenizer->eos_id() >= 0 && st.tokenizer->eos_id() != cfg.eos_token_id)
    eo.eos_ids.push_back(st.tokenizer->eos_id());
  eo.tokenizer = st.tokenizer.get();
  st.engine = std::make_unique<sampler::Engine>(*st.backend, eo);

  train::CheckpointOptions co;
  co.keep_last = static_cast<int>(recipe.integer("keep_checkpoints"));
  co.model_dtype = dtype;
  train::CheckpointManager checkpoints(ctx.run.checkpoints(), co);
  long long step = 0;
  if (!ctx.resume_from.empty()) {
    std::string from = train::CheckpointManager::resolve(ctx.resume_from);
    train::TrainState ts = train::CheckpointManager::load(from, &st.policy, st.optimizer.get(), true);
    // One optimizer file whatever world size wrote it; each ZeRO rank takes its own parameters' state.
    if (st.zero_optimizer) st.zero_optimizer->load_from_checkpoint(from);
    step = ts.step;
    st.cursor = ts.counters.count("prompt_cursor") ? ts.counters.at("prompt_cursor") : 0;
    if (st.critic) {
      model::load_weights(st.critic, from + "/critic");
      st.critic_optimizer->load(from + "/critic_optimizer.safetensors");
    }
    ctx.log.info(str("resumed from ", from, " at step ", step, ", prompt cursor ", st.cursor));
  }
  auto save = [&](long long at_step) {
    // A ZeRO optimizer first merges its shards into one file (collective).
    train::ExtraWriter move_optimizer;
    if (st.zero_optimizer) move_optimizer = st.zero_optimizer->save_for_checkpoint(checkpoints.dir(), at_step);
    if (!main_rank) {  // rank 0 writes the checkpoint; the others wait until it is complete
      st.group->barrier();
      return;
    }
    train::TrainState ts;
    ts.step = at_step;
    ts.counters["prompt_cursor"] = st.cursor;
    ts.data_state = str("{\"prompt_cursor\":", st.cursor, "}");
    ts.recipe_text = recipe.resolved();
    std::string path = checkpoints.save(st.policy, st.optimizer.get(), ts, [&](const std::string& dir) {
      if (move_optimizer) move_optimizer(dir);
      if (!st.critic) return;
      model::save_decoder(st.critic, dir + "/critic", dtype);
      st.critic_optimizer->save(dir + "/critic_optimizer.safetensors");
    });
    ctx.log.info(str("checkpoint ", path));
    if (st.group) st.group->barrier();
  };

  MetricsWriter metrics;
  metrics.open(ctx.run.rank_file("metrics.jsonl"), false);
  ctx.log.info(str("rl (", s.algorithm, "): ", st.prompts.size(), " prompts, ", s.prompts_per_step, " x ",
                   s.rollout.num_generations, " completions per step, ", steps, " steps on ", device.str(),
                   st.group ? str(", rank ", rv.rank, " of ", rv.world_size, " (", st.group->backend_name(), ")") : ""));
  InterruptGuard guard;
  const long long every = recipe.integer("checkpoint_every");
  while (step < steps) {
    ++step;
    std::map<std::string, double> m = rl_step(ctx, s, st, step);
    metrics.write(step, m);
    ctx.log.info(format_step_line(step, steps, m));
    bool interrupted = g_interrupted.load() != 0;
    if (st.group) {  // ranks stop together, or the others would wait in the next collective
      at::Tensor flag = at::full({1}, interrupted ? 1.0 : 0.0, at::TensorOptions().dtype(at::kFloat).device(device));
      st.group->all_reduce_max(flag);
      interrupted = flag.item<float>() > 0;
    }
    if ((every > 0 && step % every == 0) || step == steps || interrupted) save(step);
    if (interrupted) {
      ctx.log.warn(str("interrupted after step ", step, "; resume with --resume ", ctx.run.path()));
      return 130;
    }
  }
  if (main_rank) {  // the trained policy, self-contained, as the base/instruct stages leave theirs
    const std::string out = ctx.run.file("model");
    model::save_decoder(st.policy, out, dtype);
    if (recipe.has("tokenizer")) model::copy_tokenizer_files(recipe.string("tokenizer"), out);
    ctx.log.info(str("final policy (Hugging Face layout) in ", out));
  }
  return 0;
}

}  // namespace

const Schema& rl_schema() { return kRlSchema; }

StageSpec rl_stage() {
  return {"rl", "GRPO (or PPO with a critic) on prompts with Lua rewards", &kRlSchema, run_rl};
}

}  // namespace mathrl::lua
