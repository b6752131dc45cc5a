#include "train/trainer.h"

#include "train/step_profiler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/log.h"
#include "dist/data_parallel.h"
#include "dist/process_group.h"
#include "dist/zero.h"
#include "token_logprobs.h"

namespace mathrl::train {

// ---- RowSource --------------------------------------------------------------------------------

RowSource::RowSource(data::DocumentStream& stream, int seq_len, int32_t eos_id, int32_t pad_id)
    : stream_(stream), seq_len_(seq_len), eos_id_(eos_id), pad_id_(pad_id),
      packer_(std::make_unique<data::Packer>(seq_len, eos_id, pad_id)) {}

bool RowSource::pull_document() {
  data::Document doc;
  {
    if (!stream_.next(doc)) {
      exhausted_ = true;
      return false;
    }
    ++documents_;
    if (source_tokens_.size() <= doc.source) source_tokens_.resize(doc.source + 1, 0);
    source_tokens_[doc.source] += doc.tokens.size();
    packer_->add(doc.tokens, doc.loss_mask);
    pending_.push_back({std::move(doc.tokens), std::move(doc.loss_mask), 0});
    return true;
  }
}

void RowSource::consume(size_t n) {
  while (n > 0 && !pending_.empty()) {
    Pending& p = pending_.front();
    const size_t left = p.tokens.size() + 1 - p.emitted;
    const size_t take = std::min(n, left);
    p.emitted += take;
    n -= take;
    if (p.emitted == p.tokens.size() + 1) pending_.pop_front();
  }
}

bool RowSource::next(data::PackedRow& row) {
  while (!packer_->ready() && !exhausted_) pull_document();
  if (packer_->ready()) {
    row = packer_->pop();
    consume(static_cast<size_t>(seq_len_));
    return true;
  }
  if (flushed_) return false;
  flushed_ = true;
  if (!packer_->flush(row)) return false;
  consume(static_cast<size_t>(seq_len_));
  return true;
}

namespace {
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
template <class T>
void write_array(Writer& w, const T* begin, const T* end) {
  w.StartArray();
  for (const T* p = begin; p < end; ++p) w.Int(static_cast<int>(*p));
  w.EndArray();
}
}  // namespace

std::string RowSource::save_state() const {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  std::string stream_state = stream_.save_state();
  w.Key("stream");
  w.RawValue(stream_state.c_str(), stream_state.size(), rapidjson::kObjectType);
  w.Key("documents"); w.Uint64(documents_);
  w.Key("exhausted"); w.Bool(exhausted_);
  w.Key("flushed"); w.Bool(flushed_);
  w.Key("source_tokens"); w.StartArray();
  for (uint64_t t : source_tokens_) w.Uint64(t);
  w.EndArray();
  // Each pending document as what is left of it (the EOS is re-added by the packer).
  w.Key("pending"); w.StartArray();
  for (const Pending& p : pending_) {
    const size_t from = std::min(p.emitted, p.tokens.size());
    w.StartObject();
    w.Key("tokens"); write_array(w, p.tokens.data() + from, p.tokens.data() + p.tokens.size());
    if (!p.mask.empty()) { w.Key("mask"); write_array(w, p.mask.data() + from, p.mask.data() + p.mask.size()); }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

void RowSource::load_state(const std::string& json) {
  rapidjson::Document doc = parse_json(json, "data cursor");
  if (!doc.IsObject() || !doc.HasMember("stream") || !doc.HasMember("pending") || !doc["pending"].IsArray() ||
      !doc.HasMember("documents") || !doc["documents"].IsUint64())
    throw DataError("checkpoint data cursor: not a packed-row state (a checkpoint of another stage?)");
  stream_.load_state(to_json(doc["stream"]));
  documents_ = doc["documents"].GetUint64();
  exhausted_ = doc.HasMember("exhausted") && doc["exhausted"].GetBool();
  flushed_ = doc.HasMember("flushed") && doc["flushed"].GetBool();
  source_tokens_.clear();
  if (doc.HasMember("source_tokens"))
    for (const auto& v : doc["source_tokens"].GetArray()) source_tokens_.push_back(v.GetUint64());
  packer_ = std::make_unique<data::Packer>(seq_len_, eos_id_, pad_id_);
  pending_.clear();
  for (const auto& p : doc["pending"].GetArray()) {
    Pending item;
    for (const auto& t : p["tokens"].GetArray()) item.tokens.push_back(t.GetInt());
    if (p.HasMember("mask"))
      for (const auto& m : p["mask"].GetArray()) item.mask.push_back(static_cast<uint8_t>(m.GetInt()));
    packer_->add(item.tokens, item.mask);
    pending_.push_back(std::move(item));
  }
}

// ---- batches and loss -------------------------------------------------------------------------

namespace {
bool is_target(const data::PackedRow& row, size_t t, bool doc_masking) {
  // Position t predicts token t + 1.
  if (!row.loss_mask[t + 1] || row.doc_ids[t + 1] < 0) return false;
  return !doc_masking || row.doc_ids[t + 1] == row.doc_ids[t];
}
}  // namespace

int64_t count_targets(const data::PackedRow& row, bool doc_masking) {
  int64_t n = 0;
  for (size_t t = 0; t + 1 < row.tokens.size(); ++t) n += is_target(row, t, doc_masking);
  return n;
}

Batch make_batch(const std::vector<data::PackedRow>& rows, at::Device device, bool doc_masking) {
  MATHRL_CHECK(!rows.empty(), "make_batch: no rows");
  const int64_t B = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(rows[0].tokens.size());
  at::Tensor ids = at::empty({B, T}, at::kLong), pos = at::empty({B, T}, at::kLong), docs = at::empty({B, T}, at::kLong);
  auto* ip = ids.data_ptr<int64_t>();
  auto* pp = pos.data_ptr<int64_t>();
  auto* dp = docs.data_ptr<int64_t>();
  std::vector<int64_t> index, targets;
  Batch b;
  for (int64_t r = 0; r < B; ++r) {
    const data::PackedRow& row = rows[r];
    MATHRL_CHECK(static_cast<int64_t>(row.tokens.size()) == T, "rows of different lengths");
    for (int64_t t = 0; t < T; ++t) {
      ip[r * T + t] = row.tokens[t];
      pp[r * T + t] = row.positions[t];
      dp[r * T + t] = row.doc_ids[t];
      b.tokens += row.doc_ids[t] >= 0;
      if (t + 1 < T && is_target(row, static_cast<size_t>(t), doc_masking)) {
        index.push_back(r * T + t);
        targets.push_back(row.tokens[t + 1]);
      }
    }
  }
  b.ids = ids.to(device);
  if (doc_masking) {
    b.positions = pos.to(device);
    b.document_ids = docs.to(device);
  }
  b.target_tokens = static_cast<int64_t>(index.size());
  b.target_index = at::tensor(index, at::kLong).to(device);
  b.targets = at::tensor(targets, at::kLong).to(device);
  return b;
}

at::Tensor masked_lm_loss(model::Decoder& model, const Batch& batch, double normalizer) {
  at::Tensor h = model->hidden_states(batch.ids, batch.positions, batch.document_ids);
  at::Tensor flat = h.reshape({-1, h.size(-1)}).index_select(0, batch.target_index);
  kernels::TokenLogprobs lp = kernels::token_logprobs(flat, model->lm_head_weight(), batch.targets);
  return lp.logprobs.sum().neg() / normalizer;
}

// ---- Trainer ----------------------------------------------------------------------------------

Trainer::Trainer(model::Decoder model, AdamW& optimizer, LrSchedule schedule, data::DocumentStream& train_data,
                 TrainerOptions options)
    : Trainer(std::move(model), &optimizer, nullptr, std::move(schedule), train_data, std::move(options)) {}

Trainer::Trainer(model::Decoder model, dist::ShardedAdamW& optimizer, LrSchedule schedule,
                 data::DocumentStream& train_data, TrainerOptions options)
    : Trainer(std::move(model), nullptr, &optimizer, std::move(schedule), train_data, std::move(options)) {}

Trainer::Trainer(model::Decoder model, AdamW* adam, dist::ShardedAdamW* sharded, LrSchedule schedule,
                 data::DocumentStream& train_data, TrainerOptions options)
    : model_(std::move(model)), adam_(adam), sharded_(sharded), schedule_(std::move(schedule)),
      options_(std::move(options)), train_data_(train_data) {
  if (options_.micro_batch < 1 || options_.grad_accum < 1)
    throw UsageError(str("micro_batch and grad_accum must be >= 1 (got ", options_.micro_batch, ", ", options_.grad_accum, ")"));
  rows_ = std::make_unique<RowSource>(train_data_, options_.seq_len, options_.eos_id, options_.pad_id);
  last_eval_ = std::numeric_limits<double>::quiet_NaN();
}

Trainer::~Trainer() = default;

void Trainer::set_process_group(dist::ProcessGroup* group) {
  group_ = group;
  dp_.reset();
  overlap_ = false;
  if (adam_) adam_->set_grad_hook({});
  MATHRL_CHECK(!sharded_ || group_, "a ZeRO optimizer needs its process group");
  if (!group_ || group_->world_size() == 1) return;
  auto params = dist::trainable_parameters(*model_);
  overlap_ = std::all_of(params.begin(), params.end(), [](const auto& p) { return p.second.scalar_type() == at::kFloat; });
  if (sharded_ && !overlap_) {
    // The ZeRO optimizer reduces the gradients in its step (flat, per owner and dtype).
    if (options_.grad_accum > 1)
      throw UsageError(str("zero_stage with ", params.front().second.scalar_type(), " parameters needs grad_accum = 1 "
                           "(got ", options_.grad_accum, "): raise micro_batch instead"));
    return;
  }
  dist::DataParallelOptions o;
  o.reduction = dist::Reduction::Sum;  // the loss is already divided by the global target count
  o.overlap = overlap_;
  if (sharded_ && sharded_->stage() == 2) o.owners = sharded_->owners();  // reduce to owners, drop the rest
  dp_ = std::make_unique<dist::DataParallel>(group_, std::move(params), o);
  if (!overlap_) adam_->set_grad_hook(dp_->grad_hook());
}

void Trainer::resume(const std::string& checkpoint_dir) {
  TrainState s = CheckpointManager::load(checkpoint_dir, &model_, adam_, true);
  // The one optimizer file, whatever world size wrote it: each rank takes its own parameters' state.
  if (sharded_) sharded_->load_from_checkpoint(checkpoint_dir);
  step_ = s.step;
  if (!s.data_state.empty()) rows_->load_state(s.data_state);
  if (auto it = s.counters.find("tokens"); it != s.counters.end()) tokens_seen_ = it->second;
  if (auto it = s.metrics.find("eval_loss"); it != s.metrics.end()) last_eval_ = it->second;
  if (log_) log_->info(str("resumed from ", checkpoint_dir, " at step ", step_));
}

std::vector<data::PackedRow> Trainer::next_rows(int64_t n) {
  std::vector<data::PackedRow> rows;
  data::PackedRow row;
  while (static_cast<int64_t>(rows.size()) < n && rows_->next(row)) rows.push_back(std::move(row));
  return rows;
}

StepStats Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t number = step_ + 1;
  train_data_.set_step(number);
  const int world = group_ ? group_->world_size() : 1, rank = group_ ? group_->rank() : 0;
  // Every rank packs the same rows; this rank trains on rows rank, rank + world, ...
  std::vector<data::PackedRow> all = next_rows(options_.micro_batch * options_.grad_accum * world);
  StepStats s;
  s.step = number;
  int64_t global_targets = 0;
  std::vector<int64_t> row_targets;  // per row, so this rank knows its last training micro-batch
  for (const auto& r : all) global_targets += row_targets.emplace_back(count_targets(r, options_.doc_masking));
  if (all.empty() || global_targets == 0) {
    data_done_ = true;
    s.applied = false;
    return s;
  }
  const auto micro_batch = static_cast<size_t>(options_.micro_batch);
  std::vector<data::PackedRow> rows;
  // With overlap, only the last micro-batch with targets reduces (the earlier ones accumulate
  // locally); a rank with nothing to train on still joins the reduction in finish() with zeros.
  size_t last_backward = std::numeric_limits<size_t>::max();
  for (size_t i = static_cast<size_t>(rank); i < all.size(); i += static_cast<size_t>(world)) {
    if (row_targets[i] > 0) last_backward = rows.size() / micro_batch * micro_batch;
    rows.push_back(std::move(all[i]));
  }
  model_->train();
  at::Tensor loss_acc = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(options_.device));
  if (overlap_) dp_->set_sync(false);
  for (size_t begin = 0; begin < rows.size(); begin += micro_batch) {
    const size_t end = std::min(rows.size(), begin + micro_batch);
    std::vector<data::PackedRow> micro(rows.begin() + begin, rows.begin() + end);
    Batch batch = make_batch(micro, options_.device, options_.doc_masking);
    s.tokens += batch.tokens;
    s.target_tokens += batch.target_tokens;
    if (batch.target_tokens == 0) continue;
    at::Tensor loss = masked_lm_loss(model_, batch, static_cast<double>(global_targets));
    if (overlap_ && begin == last_backward) dp_->set_sync(true);
    loss.backward();
    if (adam_) adam_->accumulate_grads();  // bf16/fp16 models: sum micro-batches in float32
    loss_acc += loss.detach();
  }
  if (overlap_) {
    dp_->set_sync(true);
    dp_->finish();
  }
  if (world > 1) group_->all_reduce_sum(loss_acc);
  s.loss = loss_acc.item<double>();
  s.lr = schedule_.at(number);
  StepResult r = sharded_ ? sharded_->step(s.lr, s.loss) : adam_->step(s.lr, s.loss);
  s.applied = r.applied;
  s.grad_norm = r.grad_norm;
  step_ = number;
  tokens_seen_ += static_cast<uint64_t>(s.tokens);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = secs > 0 ? static_cast<double>(s.tokens) / secs : 0.0;
  return s;
}

double Trainer::evaluate() {
  if (!eval_data_) return std::numeric_limits<double>::quiet_NaN();
  if (!eval_loaded_) {
    RowSource source(*eval_data_, options_.seq_len, options_.eos_id, options_.pad_id);
    data::PackedRow row;
    while (static_cast<int64_t>(eval_cache_.size()) < options_.eval_rows && source.next(row)) eval_cache_.push_back(row);
    eval_loaded_ = true;
  }
  if (eval_cache_.empty()) return std::numeric_limits<double>::quiet_NaN();
  at::NoGradGuard no_grad;
  model_->eval();
  double sum = 0;
  int64_t count = 0;
  for (size_t begin = 0; begin < eval_cache_.size(); begin += static_cast<size_t>(options_.micro_batch)) {
    const size_t end = std::min(eval_cache_.size(), begin + static_cast<size_t>(options_.micro_batch));
    std::vector<data::PackedRow> micro(eval_cache_.begin() + begin, eval_cache_.begin() + end);
    Batch batch = make_batch(micro, options_.device, options_.doc_masking);
    if (batch.target_tokens == 0) continue;
    sum += masked_lm_loss(model_, batch, 1.0).item<double>();
    count += batch.target_tokens;
  }
  model_->train();
  last_eval_ = count ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  return last_eval_;
}

std::string Trainer::checkpoint() {
  if (!checkpoints_) return "";
  std::string path;
  // A ZeRO optimizer merges its shards into one file first (collective).
  ExtraWriter move_optimizer;
  if (sharded_) move_optimizer = sharded_->save_for_checkpoint(checkpoints_->dir(), step_);
  if (!group_ || group_->is_main()) {
    TrainState st;
    st.step = step_;
    st.data_state = rows_->save_state();
    st.recipe_text = options_.recipe_text;
    st.counters["tokens"] = tokens_seen_;
    if (std::isfinite(last_eval_)) st.metrics["eval_loss"] = last_eval_;
    path = checkpoints_->save(model_, adam_, st, move_optimizer);
    if (log_) log_->info(str("checkpoint ", path));
  }
  if (group_) group_->barrier();
  return path;
}

int64_t Trainer::skipped_steps() const { return sharded_ ? sharded_->skipped() : adam_->skipped(); }

void Trainer::write_metrics(const StepStats& s, const std::map<std::string, double>& extra) {
  if (!metrics_) return;
  std::map<std::string, double> m = extra;
  m["loss"] = s.loss;
  m["lr"] = s.lr;
  m["grad_norm"] = s.grad_norm;
  m["tokens_per_s"] = s.tokens_per_s;
  m["tokens"] = static_cast<double>(s.tokens);
  m["target_tokens"] = static_cast<double>(s.target_tokens);
  m["skipped_steps"] = static_cast<double>(skipped_steps());
  m["applied"] = s.applied ? 1.0 : 0.0;
  std::vector<std::string> names = train_data_.source_names();
  std::vector<double> mix = train_data_.realized_mix();
  for (size_t i = 0; i < names.size() && i < mix.size(); ++i) m["mix/" + names[i]] = mix[i];
  metrics_->write(s.step, m);
}

TrainSummary Trainer::run() {
  TrainSummary summary;
  summary.stop_reason = "steps";
  int64_t last_eval_step = -1, last_ckpt_step = -1;
  auto run_eval = [&](std::map<std::string, double>& into) {
    if (eval_data_) into["eval_loss"] = evaluate();
    if (eval_hook_)
      for (const auto& [k, v] : eval_hook_(step_)) into[k] = v;
    last_eval_step = step_;
  };
  std::unique_ptr<StepProfiler> profiler = StepProfiler::from_env();
  if (profiler && log_) log_->info("profiling steps into " + profiler->dir() + " (MATHRL_PROFILE)");
  while (step_ < options_.steps) {
    bool stop = stop_ && stop_->load();
    if (group_ && group_->world_size() > 1) {
      // Ranks stop together, or the others would wait in the next all-reduce.
      at::Tensor flag = at::full({1}, stop ? 1.0 : 0.0, at::TensorOptions().dtype(at::kFloat).device(options_.device));
      group_->all_reduce_max(flag);
      stop = flag.item<float>() > 0;
    }
    if (stop) {
      summary.stop_reason = "interrupted";
      break;
    }
    if (profiler) profiler->before_step(step_ + 1);
    StepStats s = train_step();
    if (profiler) profiler->after_step(step_);
    if (data_done_) {
      summary.stop_reason = "data";
      break;
    }
    summary.last_loss = s.loss;
    if (log_ && dp_ && step_ == 1)
      log_->info(overlap_ ? str("data parallel over ", group_->world_size(), " ranks: ", dp_->buckets_launched_in_backward(), " of ",
                                dp_->bucket_count(), " gradient buckets reduced during backward")
                          : str("data parallel over ", group_->world_size(), " ranks: low-precision parameters, gradients "
                                "reduced once per step in float32"));
    std::map<std::string, double> extra;
    if (options_.eval_every > 0 && step_ % options_.eval_every == 0) run_eval(extra);
    write_metrics(s, extra);
    if (log_ && (step_ % std::max<int64_t>(options_.log_every, 1) == 0 || step_ == options_.steps || !s.applied))
      log_->info(str("step ", step_, "/", options_.steps, " loss ", s.loss, " lr ", s.lr, " grad_norm ", s.grad_norm,
                     " tok/s ", static_cast<int64_t>(s.tokens_per_s), s.applied ? "" : " (skipped: non-finite)",
                     extra.count("eval_loss") ? str(" eval_loss ", extra["eval_loss"]) : ""));
    if (options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0) {
      summary.last_checkpoint = checkpoint();
      last_ckpt_step = step_;
    }
  }
  if ((eval_data_ || eval_hook_) && last_eval_step != step_ && step_ > 0) {
    std::map<std::string, double> extra;
    run_eval(extra);
    if (metrics_) metrics_->write(step_, extra);
    if (log_) for (const auto& [k, v] : extra) log_->info(str("final ", k, " ", v));
  }
  if (options_.checkpoint_at_end && last_ckpt_step != step_ && step_ > 0) summary.last_checkpoint = checkpoint();
  summary.steps = step_;
  summary.eval_loss = last_eval_;
  summary.skipped = skipped_steps();
  if (log_) log_->info(str("training stopped (", summary.stop_reason, ") at step ", step_, "; data: ", train_data_.report()));
  return summary;
}

}  // namespace mathrl::train
