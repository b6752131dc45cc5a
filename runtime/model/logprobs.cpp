#include "model/logprobs.h"

#include <cstdio>

#include "cli/options.h"
#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "token_logprobs.h"

namespace mathrl::model {

std::vector<std::vector<float>> sequence_logprobs(Decoder& model, const std::vector<std::vector<int32_t>>& sequences) {
  torch::InferenceMode guard;
  std::vector<std::vector<float>> out(sequences.size());
  int64_t longest = 0;
  for (const auto& s : sequences) longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
  if (longest < 2) return out;
  at::Device device = model->lm_head_weight().device();
  const int64_t B = static_cast<int64_t>(sequences.size());
  at::Tensor ids = at::zeros({B, longest}, at::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < sequences[b].size(); ++t) ids[b][static_cast<int64_t>(t)] = sequences[b][t];
  ids = ids.to(device);
  at::Tensor hidden = model->hidden_states(ids);
  // Gather the scored positions of every sequence into one [N, H] block.
  std::vector<int64_t> rows, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(sequences[b].size()); ++t)
      rows.push_back(b * longest + t), targets.push_back(sequences[b][t + 1]);
  at::Tensor flat = hidden.reshape({B * longest, hidden.size(2)}).index_select(0, at::tensor(rows).to(device));
  at::Tensor lp = kernels::token_logprobs(flat, model->lm_head_weight(), at::tensor(targets).to(device)).logprobs.cpu();
  const float* p = lp.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    size_t n = sequences[b].size() > 0 ? sequences[b].size() - 1 : 0;
    out[b].assign(p, p + n);
    p += n;
  }
  return out;
}

}  // namespace mathrl::model

namespace mathrl::cli {

namespace {

at::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  try {
    at::Device d(name);
    if (d.is_cuda() && !torch::cuda::is_available()) throw UsageError(str("--device ", name, ": CUDA is not available"));
    return d;
  } catch (const c10::Error&) {
    throw UsageError(str("--device: '", name, "' is not a device (cpu, cuda, cuda:N, auto)"));
  }
}

void flush_batch(model::Decoder& m, std::vector<std::vector<int32_t>>& batch, FILE* out) {
  if (batch.empty()) return;
  auto results = model::sequence_logprobs(m, batch);
  for (const auto& r : results) {
    std::string line = "{\"logprobs\":[";
    char buf[32];
    for (size_t i = 0; i < r.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%.9g", i ? "," : "", r[i]);
      line += buf;
    }
    line += "]}\n";
    std::fputs(line.c_str(), out);
  }
  batch.clear();
}

}  // namespace

int run_logprobs(const Args& args) {
  at::Device device = parse_device(args.str("device"));
  at::ScalarType dtype = model::parse_dtype(args.str("dtype"));
  long long budget = args.integer("batch-tokens");
  if (budget < 1) throw UsageError("--batch-tokens must be positive");
  model::Decoder m = model::load_decoder(args.str("model"), dtype, device);
  const auto& cfg = m->config();
  LineReader reader(args.positional().empty() ? "-" : args.positional()[0]);
  std::vector<std::vector<int32_t>> batch;
  long long batch_tokens = 0;
  std::string line;
  while (reader.next(line)) {
    std::string where = str(reader.name(), ":", reader.line_number());
    rapidjson::Document doc = parse_json(line, where);
    auto it = doc.IsObject() ? doc.FindMember("ids") : doc.MemberEnd();
    if (!doc.IsObject() || it == doc.MemberEnd() || !it->value.IsArray())
      throw DataError(str(where, ": expected {\"ids\": [...]}"));
    std::vector<int32_t> ids;
    for (const auto& v : it->value.GetArray()) {
      if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() >= cfg.vocab_size)
        throw DataError(str(where, ": token id ", v.IsInt64() ? std::to_string(v.GetInt64()) : std::string("(not an integer)"),
                            " is outside the vocabulary [0, ", cfg.vocab_size, ")"));
      ids.push_back(static_cast<int32_t>(v.GetInt64()));
    }
    if (ids.empty()) throw DataError(str(where, ": empty ids"));
    if (static_cast<int64_t>(ids.size()) > cfg.max_position_embeddings)
      throw DataError(str(where, ": ", ids.size(), " tokens exceed the model's context of ", cfg.max_position_embeddings));
    if (batch_tokens + static_cast<long long>(ids.size()) > budget) flush_batch(m, batch, stdout), batch_tokens = 0;
    batch_tokens += static_cast<long long>(ids.size());
    batch.push_back(std::move(ids));
  }
  flush_batch(m, batch, stdout);
  return 0;
}

}  // namespace mathrl::cli
