#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/jsonl.h"
#include "common/strings.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;

namespace mathrl::train {

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kFormat = "mathrl-checkpoint-1";

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(str("cannot open ", path, " to sync it: ", std::strerror(errno)));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(str("fsync of ", path, " failed: ", std::strerror(err)));
}

// step-N -> N; -1 for any other name (temporary and stale directories included).
int64_t step_of(const std::string& name) {
  static const std::regex re("step-([0-9]+)");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return -1;
  return std::stoll(m[1]);
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_raw_json(Writer& w, const std::string& text, const char* what) {
  std::string t = text.empty() ? "null" : text;
  parse_json(t, what);  // refuse to store something a resume could not read
  w.RawValue(t.c_str(), t.size(), rapidjson::kObjectType);
}

std::map<std::string, double> read_metrics(const rapidjson::Value& v) {
  std::map<std::string, double> out;
  if (!v.IsObject()) return out;
  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it)
    if (it->value.IsNumber()) out[it->name.GetString()] = it->value.GetDouble();
  return out;
}

std::optional<rapidjson::Document> read_manifest(const std::string& dir) {
  std::error_code ec;
  std::string path = dir + "/" + kManifest;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  try {
    rapidjson::Document doc = parse_json(read_file(path), path);
    if (!doc.IsObject() || !doc.HasMember("format") || !doc["format"].IsString() ||
        std::string(doc["format"].GetString()) != kFormat || !doc.HasMember("files") || !doc["files"].IsObject() ||
        !doc.HasMember("step") || !doc["step"].IsInt64())
      return std::nullopt;
    return doc;
  } catch (const Error&) {
    return std::nullopt;
  }
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

}  // namespace

// ---- RNG --------------------------------------------------------------------------------------

void save_rng_state(const std::string& path) {
  std::vector<at::Tensor> keep;
  std::vector<model::TensorBytes> tensors;
  auto add = [&](const std::string& name, at::Tensor t) {
    keep.push_back(t.to(at::kCPU).contiguous());
    tensors.push_back({name, "U8", {keep.back().numel()}, keep.back().data_ptr(), static_cast<size_t>(keep.back().nbytes())});
  };
  add("cpu", at::detail::getDefaultCPUGenerator().get_state());
  const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t i = 0; i < n; ++i)
    add(str("cuda:", i), at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i))).get_state());
  model::write_safetensors(path, std::move(tensors), {{"format", "mathrl-rng"}, {"cuda_devices", std::to_string(n)}});
}

void load_rng_state(const std::string& path) {
  model::MappedSafetensors file(path);
  auto restore = [&](const std::string& name, at::Generator gen) {
    const model::TensorEntry* e = file.find(name);
    if (!e) return;
    at::Tensor t = at::from_blob(const_cast<uint8_t*>(file.data(*e)), {static_cast<int64_t>(e->end - e->begin)}, at::kByte).clone();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(t);
  };
  restore("cpu", at::detail::getDefaultCPUGenerator());
  const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t i = 0; i < n; ++i)
    restore(str("cuda:", i), at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i))));
}

// ---- manager ----------------------------------------------------------------------------------

CheckpointManager::CheckpointManager(std::string dir, CheckpointOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  if (options_.keep_last < 1) throw UsageError(str("keep_last must be >= 1, got ", options_.keep_last));
  fs::create_directories(dir_);
}

std::string CheckpointManager::save(model::Decoder& model, const AdamW* optimizer, const TrainState& state,
                                    const ExtraWriter& extra) {
  const std::string name = str("step-", state.step);
  const std::string final_dir = dir_ + "/" + name;
  const std::string tmp = str(final_dir, ".tmp-", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  model::save_decoder(model, tmp, options_.model_dtype);
  if (optimizer) optimizer->save(tmp + "/" + kOptimizerFile);
  if (options_.save_rng) save_rng_state(tmp + "/rng.safetensors");
  {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("step"); w.Int64(state.step);
    w.Key("counters"); w.StartObject();
    for (const auto& [k, v] : state.counters) { w.Key(k.c_str()); w.Uint64(v); }
    w.EndObject();
    w.Key("metrics"); w.StartObject();
    for (const auto& [k, v] : state.metrics) { w.Key(k.c_str()); w.Double(v); }
    w.EndObject();
    w.Key("data_state"); write_raw_json(w, state.data_state, "data_state");
    w.Key("extra"); write_raw_json(w, state.extra_json, "extra_json");
    w.EndObject();
    write_file_atomic(tmp + "/state.json", std::string(buf.GetString(), buf.GetSize()));
  }
  write_file_atomic(tmp + "/recipe.lua", state.recipe_text);
  if (extra) extra(tmp);

  // Every file is durable before the manifest names it; the manifest is durable before the rename.
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("format"); w.String(kFormat);
  w.Key("step"); w.Int64(state.step);
  w.Key("metrics"); w.StartObject();
  for (const auto& [k, v] : state.metrics) { w.Key(k.c_str()); w.Double(v); }
  w.EndObject();
  w.Key("files"); w.StartObject();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(tmp))
    if (entry.is_regular_file() && entry.path().filename() != kManifest) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    fsync_path(f.string());
    w.Key(f.filename().string().c_str());
    w.Uint64(fs::file_size(f));
  }
  w.EndObject();
  w.EndObject();
  write_file_atomic(tmp + "/" + kManifest, std::string(buf.GetString(), buf.GetSize()));
  fsync_path(tmp + "/" + kManifest);
  fsync_path(tmp);

  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    // Replacing a checkpoint of the same step (a resumed run saving again): move the old one aside
    // first; it stops being valid by name, the new one becomes valid by the rename below.
    const std::string old = str(final_dir, ".old-", ::getpid());
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_path(dir_);
  prune();
  return final_dir;
}

bool CheckpointManager::is_valid(const std::string& checkpoint_dir) {
  std::error_code ec;
  fs::path p = fs::path(checkpoint_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const int64_t step = step_of(p.filename().string());
  if (step < 0 || !fs::is_directory(p, ec)) return false;
  auto doc = read_manifest(p.string());
  if (!doc || (*doc)["step"].GetInt64() != step) return false;
  const auto& files = (*doc)["files"];
  if (!files.HasMember("config.json")) return false;
  for (auto it = files.MemberBegin(); it != files.MemberEnd(); ++it) {
    fs::path f = p / it->name.GetString();
    if (!it->value.IsUint64() || !fs::is_regular_file(f, ec) || fs::file_size(f, ec) != it->value.GetUint64()) return false;
  }
  return true;
}

std::vector<CheckpointInfo> CheckpointManager::valid() const {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    const int64_t step = step_of(name);
    if (step < 0 || !is_valid(entry.path().string())) continue;
    auto doc = read_manifest(entry.path().string());
    out.push_back({entry.path().string(), step, doc->HasMember("metrics") ? read_metrics((*doc)["metrics"]) : std::map<std::string, double>{}});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointInfo> CheckpointManager::latest_valid() const {
  auto all = valid();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::optional<CheckpointInfo> CheckpointManager::best() const {
  if (options_.best_metric.empty()) return std::nullopt;
  std::optional<CheckpointInfo> best;
  for (auto& c : valid()) {
    auto it = c.metrics.find(options_.best_metric);
    if (it == c.metrics.end() || !std::isfinite(it->second)) continue;
    if (!best || it->second < best->metrics.at(options_.best_metric)) best = c;
  }
  return best;
}

void CheckpointManager::prune() const {
  auto all = valid();
  auto best_ckpt = best();
  const size_t keep_from = all.size() > static_cast<size_t>(options_.keep_last) ? all.size() - options_.keep_last : 0;
  for (size_t i = 0; i < keep_from; ++i) {
    if (best_ckpt && best_ckpt->path == all[i].path) continue;
    std::error_code ec;
    fs::remove_all(all[i].path, ec);
  }
  // Temporary directories left by processes that died mid-write.
  static const std::regex tmp_re("step-[0-9]+\\.(tmp|old)-([0-9]+)");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, tmp_re) && !process_alive(std::stol(m[2]))) fs::remove_all(entry.path(), ec);
  }
}

std::string CheckpointManager::resolve(const std::string& path) {
  std::error_code ec;
  if (is_valid(path)) return fs::path(path).lexically_normal().string();
  if (!fs::is_directory(path, ec)) throw UsageError(str("--resume: no such directory: ", path));
  std::string dir = fs::is_directory(path + "/checkpoints", ec) ? path + "/checkpoints" : path;
  CheckpointManager m(dir, {});
  auto latest = m.latest_valid();
  if (!latest) throw UsageError(str("--resume: no valid checkpoint in ", dir));
  return latest->path;
}

TrainState CheckpointManager::load(const std::string& checkpoint_dir, model::Decoder* model, AdamW* optimizer,
                                   bool restore_rng) {
  if (!is_valid(checkpoint_dir))
    throw DataError(str(checkpoint_dir, ": not a complete checkpoint (missing or inconsistent manifest.json)"));
  const std::string dir = checkpoint_dir;
  if (model) model::load_weights(*model, dir);
  std::error_code ec;
  const std::string optimizer_file = dir + "/" + kOptimizerFile;
  if (model && optimizer && fs::exists(optimizer_file, ec)) optimizer->load(optimizer_file);
  if (restore_rng && fs::exists(dir + "/rng.safetensors", ec)) load_rng_state(dir + "/rng.safetensors");
  rapidjson::Document doc = parse_json(read_file(dir + "/state.json"), dir + "/state.json");
  TrainState s;
  if (!doc.IsObject() || !doc.HasMember("step") || !doc["step"].IsInt64())
    throw DataError(str(dir, "/state.json: no step"));
  s.step = doc["step"].GetInt64();
  if (doc.HasMember("counters") && doc["counters"].IsObject())
    for (auto it = doc["counters"].MemberBegin(); it != doc["counters"].MemberEnd(); ++it)
      if (it->value.IsUint64()) s.counters[it->name.GetString()] = it->value.GetUint64();
  if (doc.HasMember("metrics")) s.metrics = read_metrics(doc["metrics"]);
  if (doc.HasMember("data_state") && !doc["data_state"].IsNull()) s.data_state = to_json(doc["data_state"]);
  if (doc.HasMember("extra") && !doc["extra"].IsNull()) s.extra_json = to_json(doc["extra"]);
  if (fs::exists(dir + "/recipe.lua", ec)) s.recipe_text = read_file(dir + "/recipe.lua");
  return s;
}

}  // namespace mathrl::train
