#include "train/train_stage.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include <torch/torch.h>

#include "common/error.h"
#include "common/log.h"
#include "common/strings.h"
#include "data/data_section.h"
#include "dist/data_parallel.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace mathrl::lua {

namespace {

struct Defaults {
  const char* name;
  const char* seq_len;
  const char* lr;
  const char* schedule;
  const char* warmup;
  const char* weight_decay;
  const char* doc_masking;
};

Schema make_schema(const Defaults& d) {
  Schema s{d.name, common_stage_fields(d.name)};
  s.fields.insert(s.fields.end(), {
    {"model", FieldType::Any, "", "a Hugging Face model directory to start from, or a table of config.json keys "
     "(hidden_size, num_hidden_layers, ...) for a random-initialized model", nullptr, {}, true},
    {"tokenizer", FieldType::String, "", "tokenizer file or directory (default: the model directory)"},
    {"data", FieldType::Section, "", "training data: sources and mixing weights", &data_section_schema(), {}, true},
    {"eval_data", FieldType::Table, "", "held-out data, same form as `data` (optional)"},
    {"seq_len", FieldType::Int, d.seq_len, "tokens per packed row (context length)"},
    {"micro_batch", FieldType::Int, "1", "rows per forward/backward pass"},
    {"grad_accum", FieldType::Int, "1", "micro-batches per optimizer step"},
    {"steps", FieldType::Int, "", "optimizer steps (or give `tokens`)"},
    {"tokens", FieldType::Number, "", "training tokens; steps = tokens / (seq_len * micro_batch * grad_accum * ranks)"},
    {"lr", FieldType::NumberOrFunction, d.lr, "peak learning rate, or function(step) giving the rate (then `schedule` is ignored)"},
    {"schedule", FieldType::String, d.schedule, "learning-rate schedule after warmup", nullptr,
     {"cosine", "constant", "linear", "multistep"}},
    {"warmup", FieldType::Int, d.warmup, "linear warmup steps"},
    {"min_lr_ratio", FieldType::Number, "0.1", "cosine/linear: the final rate as a fraction of lr"},
    {"weight_decay", FieldType::Number, d.weight_decay, "AdamW decoupled weight decay (matrices only; not norms or biases)"},
    {"betas", FieldType::List, "{0.9, 0.95}", "AdamW betas {beta1, beta2}"},
    {"eps", FieldType::Number, "1e-8", "AdamW epsilon"},
    {"clip", FieldType::Number, "1.0", "max global gradient norm (0 = no clipping)"},
    {"zero_stage", FieldType::Int, "0", "data parallel: 0 = every rank keeps the whole optimizer state; 1 = AdamW "
     "state and masters sharded across ranks (ZeRO-1); 2 = gradients too (ZeRO-2)"},
    {"dtype", FieldType::String, "'auto'", "compute dtype of the weights (masters stay float32); auto = bfloat16 on CUDA, float32 on CPU",
     nullptr, {"auto", "float32", "bfloat16", "float16"}},
    {"save_dtype", FieldType::String, "'auto'", "dtype of saved models (auto = the compute dtype)", nullptr,
     {"auto", "float32", "bfloat16", "float16"}},
    {"activation_checkpointing", FieldType::Bool, "false", "recompute each layer in backward (less memory, ~1/3 more compute)"},
    {"doc_masking", FieldType::Bool, d.doc_masking, "tokens attend only within their own document in a packed row"},
    {"eval_every", FieldType::Int, "0", "evaluate every N steps (0 = at the end only)"},
    {"eval_rows", FieldType::Int, "64", "held-out rows per evaluation"},
    {"checkpoint_every", FieldType::Int, "0", "checkpoint every N steps (0 = at the end only)"},
    {"checkpoint_at_end", FieldType::Bool, "true", "checkpoint after the last step and when interrupted"},
    {"keep_last", FieldType::Int, "3", "checkpoints kept (plus the one with the best eval_loss)"},
    {"nan_guard_limit", FieldType::Int, "5", "non-finite steps in a row that stop the run (each is skipped)"},
    {"log_every", FieldType::Int, "10", "log a line every N steps (metrics.jsonl gets every step)"},
    {"on_eval", FieldType::Function, "", "function(step, model_dir) returning a table of name = number metrics; "
     "called at every evaluation with the current model saved in model_dir"},
  });
  return s;
}

const Defaults kBase{"base", "4096", "4.2e-4", "'multistep'", "2000", "0.1", "true"};
const Defaults kInstruct{"instruct", "4096", "5e-5", "'constant'", "0", "0.0", "true"};

std::atomic<bool> g_stop{false};
void on_sigint(int) { g_stop.store(true); }

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string where_of(const Recipe& r) { return r.path() + ": "; }

// The `model` field: a directory (loaded) or a config table (random init).
model::Decoder build_model(Recipe& recipe, const Tokenizer* tok, int32_t eos, at::ScalarType dtype, at::Device device, uint64_t seed,
                           std::string& model_dir) {
  lua_State* L = recipe.L();
  recipe.push("model");
  if (lua_type(L, -1) == LUA_TSTRING) {
    model_dir = lua_tostring(L, -1);
    lua_pop(L, 1);
    return model::load_decoder(model_dir, dtype, device);
  }
  if (!lua_istable(L, -1)) {
    std::string got = type_name_at(L, -1);
    lua_pop(L, 1);
    throw RecipeError(str(where_of(recipe), "field 'model' must be a model directory or a table of config keys, got ", got));
  }
  std::string json = "{";
  bool has_vocab = false;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 3);
      throw RecipeError(str(where_of(recipe), "model: config keys must be names"));
    }
    std::string key = lua_tostring(L, -2), value;
    if (lua_isinteger(L, -1)) value = std::to_string(lua_tointeger(L, -1));
    else if (lua_type(L, -1) == LUA_TNUMBER) value = str(lua_tonumber(L, -1));
    else if (lua_isboolean(L, -1)) value = lua_toboolean(L, -1) ? "true" : "false";
    else if (lua_type(L, -1) == LUA_TSTRING) value = str("\"", lua_tostring(L, -1), "\"");
    else {
      lua_pop(L, 3);
      throw RecipeError(str(where_of(recipe), "model.", key, " must be a number, boolean or string"));
    }
    has_vocab |= key == "vocab_size";
    json += str(json.size() > 1 ? "," : "", "\"", key, "\":", value);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (!has_vocab && tok) json += str(json.size() > 1 ? "," : "", "\"vocab_size\":", tok->vocab_size());
  if (eos >= 0 && json.find("\"eos_token_id\"") == std::string::npos) json += str(",\"eos_token_id\":", eos);
  if (tok && tok->bos_id() >= 0 && json.find("\"bos_token_id\"") == std::string::npos) json += str(",\"bos_token_id\":", tok->bos_id());
  json += "}";
  return model::random_decoder(model::parse_config(json, where_of(recipe) + "model"), seed, dtype, device);
}

std::map<std::string, double> read_metric_table(lua_State* L, const std::string& what) {
  std::map<std::string, double> out;
  if (lua_isnil(L, -1)) return out;
  if (!lua_istable(L, -1)) throw RecipeError(str(what, " must return a table of name = number (got ", type_name_at(L, -1), ")"));
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
      lua_pop(L, 2);
      throw RecipeError(str(what, " must return a table of name = number"));
    }
    out[lua_tostring(L, -2)] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  return out;
}

int run_training(RunContext& ctx) {
  Recipe& recipe = ctx.recipe;
  lua_State* L = recipe.L();
  const std::string where = where_of(recipe);
  const uint64_t seed = static_cast<uint64_t>(recipe.integer("seed"));
  at::manual_seed(seed);

  // Ranks (data parallelism) from the environment.
  dist::Rendezvous rv = dist::rendezvous_from_env();
  std::string device_name = recipe.string("device");
  if (device_name == "auto") device_name = torch::cuda::is_available() ? "cuda" : "cpu";
  at::Device device(device_name);
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rv.local_rank));
  std::shared_ptr<dist::ProcessGroup> group;
  if (rv.world_size > 1) group = dist::ProcessGroup::create(rv);

  std::string dtype_name = recipe.string("dtype");
  at::ScalarType dtype = dtype_name == "auto" ? (device.is_cuda() ? at::kBFloat16 : at::kFloat) : model::parse_dtype(dtype_name);
  std::string save_name = recipe.string("save_dtype");
  at::ScalarType save_dtype = save_name == "auto" ? dtype : model::parse_dtype(save_name);

  // Tokenizer: the field, else the model directory.
  std::string tokenizer_path;
  if (recipe.has("tokenizer")) tokenizer_path = recipe.string("tokenizer");
  recipe.push("model");
  if (tokenizer_path.empty() && lua_type(L, -1) == LUA_TSTRING) tokenizer_path = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (tokenizer_path.empty()) throw RecipeError(str(where, "field 'tokenizer' is required when 'model' is a config table"));
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_path);

  // Tokenizer files that do not say which token ends a document: the usual names.
  int32_t eos = tok->eos_id();
  for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>",
                           "<\xef\xbd\x9c" "end" "\xe2\x96\x81" "of" "\xe2\x96\x81" "sentence" "\xef\xbd\x9c>"})
    if (eos < 0) eos = tok->token_to_id(name);
  std::string model_dir;
  model::Decoder model = build_model(recipe, tok.get(), eos, dtype, device, seed, model_dir);
  model->set_activation_checkpointing(recipe.boolean("activation_checkpointing"));
  if (eos < 0) eos = static_cast<int32_t>(model->config().eos_token_id);
  if (eos < 0) throw UsageError(str(where, "the tokenizer has no EOS token and the model config names none (eos_token_id)"));
  int32_t pad = tok->pad_id() >= 0 ? tok->pad_id() : eos;
  if (static_cast<int64_t>(tok->vocab_size()) > model->config().vocab_size)
    throw UsageError(str(where, "the tokenizer has ", tok->vocab_size(), " tokens but the model only ", model->config().vocab_size));

  // Data.
  auto warn = [&](const std::string& m) { ctx.log.warn(m); };
  recipe.push("data");
  std::unique_ptr<data::DocumentStream> train_data = make_document_stream(L, lua_gettop(L), *tok, seed, where, warn);
  lua_pop(L, 1);
  std::unique_ptr<data::DocumentStream> eval_data;
  if (recipe.has("eval_data")) {
    recipe.push("eval_data");
    validate(L, lua_gettop(L), data_section_schema(), "eval_data.", where);
    eval_data = make_document_stream(L, lua_gettop(L), *tok, seed + 1, where, warn);
    lua_pop(L, 1);
  }

  // Steps.
  train::TrainerOptions o;
  o.seq_len = static_cast<int>(recipe.integer("seq_len"));
  o.micro_batch = recipe.integer("micro_batch");
  o.grad_accum = recipe.integer("grad_accum");
  const int64_t tokens_per_step = o.seq_len * o.micro_batch * o.grad_accum * rv.world_size;
  if (recipe.has("steps")) o.steps = recipe.integer("steps");
  else if (recipe.has("tokens")) o.steps = static_cast<int64_t>(std::ceil(recipe.number("tokens") / static_cast<double>(tokens_per_step)));
  else throw RecipeError(str(where, "give 'steps' or 'tokens'"));
  if (o.steps < 1) throw RecipeError(str(where, "steps must be >= 1 (got ", o.steps, ")"));
  if (o.seq_len < 2 || o.seq_len > model->config().max_position_embeddings)
    throw RecipeError(str(where, "seq_len ", o.seq_len, " must be in [2, max_position_embeddings = ",
                          model->config().max_position_embeddings, "]"));
  o.doc_masking = recipe.boolean("doc_masking");
  o.eval_every = recipe.integer("eval_every");
  o.eval_rows = recipe.integer("eval_rows");
  o.checkpoint_every = recipe.integer("checkpoint_every");
  o.checkpoint_at_end = recipe.boolean("checkpoint_at_end");
  o.log_every = recipe.integer("log_every");
  o.device = device;
  o.eos_id = eos;
  o.pad_id = pad;
  o.recipe_text = recipe.resolved();

  // Optimizer and schedule.
  train::AdamWOptions ao;
  recipe.push("betas");
  if (luaL_len(L, -1) != 2) throw RecipeError(str(where, "betas must be {beta1, beta2}"));
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 2);
  if (!lua_isnumber(L, -1) || !lua_isnumber(L, -2)) throw RecipeError(str(where, "betas must be two numbers"));
  ao.beta1 = lua_tonumber(L, -2);
  ao.beta2 = lua_tonumber(L, -1);
  lua_pop(L, 3);
  ao.eps = recipe.number("eps");
  ao.weight_decay = recipe.number("weight_decay");
  ao.clip = recipe.number("clip");
  ao.nan_guard_limit = static_cast<int>(recipe.integer("nan_guard_limit"));
  const int64_t zero_stage = recipe.integer("zero_stage");
  if (zero_stage < 0 || zero_stage > 2) throw RecipeError(str(where, "zero_stage must be 0, 1 or 2 (got ", zero_stage, ")"));
  std::optional<train::AdamW> adam;
  std::unique_ptr<dist::ShardedAdamW> zero;
  if (zero_stage > 0 && group) {
    auto params = dist::trainable_parameters(*model);
    dist::ZeroOptions zo;
    zo.stage = static_cast<int>(zero_stage);
    // Float32: the trainer's bucketed reduction (to owners for stage 2) runs during backward.
    zo.reduce_grads = !std::all_of(params.begin(), params.end(), [](const auto& p) { return p.second.scalar_type() == at::kFloat; });
    zo.reduction = dist::Reduction::Sum;  // each rank's loss is divided by the global target count
    zero = std::make_unique<dist::ShardedAdamW>(group.get(), std::move(params), ao, zo);
    ctx.log.info(str("ZeRO-", zero_stage, ": optimizer state of ", zero->partition().numel[static_cast<size_t>(rv.rank)],
                     " of the model's parameters on this rank"));
  } else {
    if (zero_stage > 0) ctx.log.info("zero_stage has no effect in one process");
    adam.emplace(train::AdamW::for_module(*model, ao));
  }

  recipe.push("lr");
  const bool lr_function = lua_type(L, -1) == LUA_TFUNCTION;
  lua_pop(L, 1);
  train::ScheduleOptions so;
  so.kind = lr_function ? train::ScheduleKind::Function : train::parse_schedule(recipe.string("schedule"));
  so.lr = lr_function ? 0.0 : recipe.number("lr");
  so.warmup_steps = recipe.integer("warmup");
  so.total_steps = o.steps;
  so.min_lr_ratio = recipe.number("min_lr_ratio");
  if (so.warmup_steps >= o.steps && !lr_function) {
    ctx.log.warn(str("warmup (", so.warmup_steps, ") >= steps (", o.steps, "): warmup shortened to ", o.steps / 10));
    so.warmup_steps = o.steps / 10;
  }
  train::LrSchedule schedule(so, lr_function ? std::function<double(int64_t)>([&recipe](int64_t step) {
    return recipe.number_at("lr", step);
  }) : std::function<double(int64_t)>());

  // Outputs.
  const bool main_rank = rv.rank == 0;
  const bool resuming = !ctx.resume_from.empty();
  MetricsWriter metrics;
  metrics.open(ctx.run.rank_file("metrics.jsonl"), resuming);
  train::CheckpointOptions co;
  co.keep_last = static_cast<int>(recipe.integer("keep_last"));
  co.best_metric = eval_data ? "eval_loss" : "";
  co.model_dtype = save_dtype;
  train::CheckpointManager checkpoints(ctx.run.checkpoints(), co);

  std::unique_ptr<train::Trainer> trainer_ptr = zero ? std::make_unique<train::Trainer>(model, *zero, schedule, *train_data, o)
                                                     : std::make_unique<train::Trainer>(model, *adam, schedule, *train_data, o);
  train::Trainer& trainer = *trainer_ptr;
  trainer.set_logger(&ctx.log);
  trainer.set_metrics(&metrics);
  if (main_rank || group) trainer.set_checkpoints(&checkpoints);
  if (group) trainer.set_process_group(group.get());
  if (eval_data) trainer.set_eval_data(eval_data.get());
  if (recipe.has("on_eval")) {
    const std::string eval_dir = ctx.run.file("eval_model");
    trainer.set_eval_hook([&, eval_dir](int64_t step) {
      std::map<std::string, double> out;
      if (!main_rank) return out;
      model::save_decoder(model, eval_dir, save_dtype);
      model::copy_tokenizer_files(tokenizer_path, eval_dir);
      recipe.push("on_eval");
      lua_pushinteger(L, step);
      lua_pushstring(L, eval_dir.c_str());
      protected_call(L, 2, 1, "on_eval");
      out = read_metric_table(L, "on_eval");
      lua_pop(L, 1);
      return out;
    });
  }
  if (resuming) trainer.resume(train::CheckpointManager::resolve(ctx.resume_from));

  ctx.log.info(str(recipe.stage().name, ": ", model->config().parameter_count(), " parameters, ", model::dtype_name(dtype),
                   " on ", device.str(), ", ", o.steps, " steps of ", tokens_per_step, " tokens (seq_len ", o.seq_len,
                   " x micro_batch ", o.micro_batch, " x grad_accum ", o.grad_accum, " x ", rv.world_size, " ranks), ",
                   "schedule ", train::schedule_name(so.kind), ", sources: ", join_names(train_data->source_names())));

  g_stop.store(false);
  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  trainer.set_stop_flag(&g_stop);
  train::TrainSummary summary;
  try {
    summary = trainer.run();
  } catch (...) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    throw;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  if (summary.stop_reason == "interrupted") {
    ctx.log.warn(str("interrupted at step ", summary.steps, "; checkpoint ", summary.last_checkpoint,
                     "; continue with --resume ", ctx.run.path()));
    return 130;
  }
  if (main_rank) {
    const std::string out = ctx.run.file("model");
    model::save_decoder(model, out, save_dtype);
    model::copy_tokenizer_files(tokenizer_path, out);
    ctx.log.info(str("final model (Hugging Face layout) in ", out, "; ", summary.steps, " steps, last loss ",
                     summary.last_loss, std::isfinite(summary.eval_loss) ? str(", eval_loss ", summary.eval_loss) : "",
                     summary.skipped ? str(", ", summary.skipped, " non-finite steps skipped") : ""));
  }
  return 0;
}

}  // namespace

const Schema& base_schema() {
  static const Schema s = make_schema(kBase);
  return s;
}
const Schema& instruct_schema() {
  static const Schema s = make_schema(kInstruct);
  return s;
}

StageSpec base_stage() {
  return {"base", "continued pretraining on a packed, token-weighted data mix", &base_schema(), run_training};
}
StageSpec instruct_stage() {
  return {"instruct", "supervised fine-tuning on prompt/response data (loss on responses)", &instruct_schema(), run_training};
}

}  // namespace mathrl::lua
