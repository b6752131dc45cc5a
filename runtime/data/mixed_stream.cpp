#include "data/mixed_stream.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/error.h"
#include "common/jsonl.h"

namespace mathrl::data {
namespace {

constexpr int kStateVersion = 1;

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ULL;
  return h;
}

Mixer make_mixer(const std::vector<SourceConfig>& sources) {
  if (sources.empty()) throw UsageError("data: no sources");
  std::vector<std::string> names;
  std::vector<double> weights;
  for (const auto& s : sources) {
    for (const auto& n : names)
      if (n == s.name) throw UsageError(str("data: two sources are named '", n, "'"));
    names.push_back(s.name);
    weights.push_back(s.weight_fn ? s.weight_fn(0) : s.weight);
  }
  return Mixer(names, weights);
}

}  // namespace

MixedStream::MixedStream(std::vector<SourceConfig> sources, StreamOptions options)
    : options_(std::move(options)), mixer_(make_mixer(sources)) {
  for (auto& s : sources) {
    if (!s.source) throw UsageError(str("data source '", s.name, "' has no reader"));
    if (!std::isfinite(s.epochs) || s.epochs < 0)
      throw UsageError(str("data source '", s.name, "': epochs must be >= 0, got ", s.epochs));
    Cursor c;
    uint64_t x = s.seed ? *s.seed : options_.seed ^ fnv1a(s.name);
    c.seed = splitmix64(x);
    const double epochs = s.epochs > 0 ? s.epochs : (s.max_tokens > 0 ? 0.0 : 1.0);
    if (epochs > 0) {
      c.budget = static_cast<uint64_t>(std::llround(epochs * static_cast<double>(s.source->size())));
      if (c.budget == 0) c.exhausted = true;
    }
    c.cfg = std::move(s);
    build_order(c);
    cursors_.push_back(std::move(c));
  }
  for (size_t i = 0; i < cursors_.size(); ++i)
    if (cursors_[i].exhausted) mixer_.set_exhausted(i);
}

void MixedStream::warn(const std::string& msg) const {
  if (options_.warn)
    options_.warn(msg);
  else
    std::fprintf(stderr, "warn: %s\n", msg.c_str());
}

void MixedStream::build_order(Cursor& c) const {
  c.order.clear();
  const uint64_t n = c.cfg.source->size();
  if (!c.cfg.shuffle || n < 2) return;
  c.order.resize(n);
  for (uint64_t i = 0; i < n; ++i) c.order[i] = i;
  uint64_t x = c.seed ^ (0xD1B54A32D192ED03ULL * (c.epoch + 1));
  for (uint64_t i = n - 1; i > 0; --i) {  // Fisher-Yates with a fixed generator: same order on every platform
    const uint64_t j = static_cast<uint64_t>((static_cast<unsigned __int128>(splitmix64(x)) * (i + 1)) >> 64);
    std::swap(c.order[i], c.order[j]);
  }
}

void MixedStream::skip(Cursor& c, uint64_t record, const std::string& reason) {
  const std::string at = c.cfg.source->locate(record);
  if (options_.strict)
    throw DataError(str(at, ": ", reason, " (data source '", c.cfg.name, "', strict mode)"));
  ++c.skip_events;
  const bool first_time = c.skipped.insert(record).second;
  if (c.first_reason.empty()) c.first_reason = reason.substr(0, reason.find('\n'));
  if (first_time && c.first_skips.size() < options_.log_first) {
    c.first_skips.push_back(at);
    warn(str("data source '", c.cfg.name, "': skipping ", at, ": ", reason.substr(0, reason.find('\n'))));
  }
  if (c.docs == 0 && options_.give_up_after && c.skip_events >= options_.give_up_after)
    throw DataError(str("data source '", c.cfg.name, "': the first ", c.skip_events,
                        " records were all malformed; last ", at, ": ", reason.substr(0, reason.find('\n'))));
}

bool MixedStream::next_from(Cursor& c, size_t index, Document& out) {
  const uint64_t n = c.cfg.source->size();
  while (!c.exhausted) {
    if (n == 0 || (c.budget && c.visited >= c.budget) || (c.cfg.max_tokens && c.tokens >= c.cfg.max_tokens)) {
      c.exhausted = true;
      break;
    }
    if (c.pos == n) {
      if (c.docs_this_epoch == 0) {  // a whole pass without a usable record: repeating cannot help
        c.exhausted = true;
        break;
      }
      ++c.epoch;
      c.pos = 0;
      c.docs_this_epoch = 0;
      build_order(c);
    }
    const uint64_t record = c.order.empty() ? c.pos : c.order[c.pos];
    ++c.pos;
    ++c.visited;
    const std::string reason = c.cfg.source->read(record, out);
    if (!reason.empty()) {
      skip(c, record, reason);
      continue;
    }
    if (out.tokens.empty()) continue;
    if (!out.loss_mask.empty() && out.loss_mask.size() != out.tokens.size())
      throw Error(str(c.cfg.source->locate(record), ": loss mask length ", out.loss_mask.size(), " != ",
                      out.tokens.size(), " tokens"));
    if (c.cfg.max_tokens && c.tokens + out.tokens.size() > c.cfg.max_tokens) {
      const size_t keep = static_cast<size_t>(c.cfg.max_tokens - c.tokens);
      out.tokens.resize(keep);
      if (!out.loss_mask.empty()) out.loss_mask.resize(keep);
    }
    c.tokens += out.tokens.size();
    ++c.docs;
    ++c.docs_this_epoch;
    out.source = index;
    return true;
  }
  if (c.docs == 0 && c.skip_events > 0)  // a source that gave nothing but malformed records is a mistake
    throw DataError(str("data source '", c.cfg.name, "': every one of the ", c.skip_events, " records read was malformed",
                        c.first_skips.empty() ? "" : "; first: " + c.first_skips.front() + ": " + c.first_reason));
  return false;
}

bool MixedStream::next(Document& out) {
  while (mixer_.available()) {
    const size_t i = mixer_.pick();
    if (next_from(cursors_[i], i, out)) {
      mixer_.record(i, out.tokens.size());
      return true;
    }
    mixer_.set_exhausted(i);
  }
  return false;
}

std::vector<double> MixedStream::current_weights(int64_t step) const {
  std::vector<double> w;
  for (const auto& c : cursors_) w.push_back(c.cfg.weight_fn ? c.cfg.weight_fn(step) : c.cfg.weight);
  return w;
}

void MixedStream::set_step(int64_t step) {
  bool any_fn = false;
  for (const auto& c : cursors_) any_fn = any_fn || static_cast<bool>(c.cfg.weight_fn);
  step_ = step;
  if (!any_fn) return;
  try {
    mixer_.set_weights(current_weights(step));
  } catch (const UsageError& e) {
    throw UsageError(str("data weights at step ", step, ": ", e.what()));
  }
}

std::vector<std::string> MixedStream::source_names() const { return mixer_.names(); }

std::vector<double> MixedStream::realized_mix() const { return mixer_.realized(); }

std::string MixedStream::report() const {
  std::ostringstream out;
  const auto r = mixer_.realized();
  uint64_t total = 0;
  for (size_t i = 0; i < cursors_.size(); ++i) {
    const Cursor& c = cursors_[i];
    total += c.tokens;
    char frac[32];
    std::snprintf(frac, sizeof frac, "%.3f", r[i]);
    out << (i ? " " : "") << c.cfg.name << '=' << frac << " (" << c.tokens << " tokens, epoch " << c.epoch + 1
        << ", " << c.skipped.size() << " skipped";
    for (size_t k = 0; k < c.first_skips.size(); ++k) out << (k ? " " : ": ") << c.first_skips[k];
    if (c.skipped.size() > c.first_skips.size()) out << " ...";
    out << ')';
  }
  out << "; " << total << " tokens";
  return out.str();
}

std::string MixedStream::save_state() const {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("version");
  w.Int(kStateVersion);
  w.Key("step");
  w.Int64(step_);
  w.Key("sources");
  w.StartArray();
  for (size_t i = 0; i < cursors_.size(); ++i) {
    const Cursor& c = cursors_[i];
    w.StartObject();
    w.Key("name");
    w.String(c.cfg.name.c_str());
    w.Key("kind");
    w.String(c.cfg.source->kind());
    w.Key("records");
    w.Uint64(c.cfg.source->size());
    w.Key("seed");
    w.Uint64(c.seed);
    w.Key("weight");
    w.Double(mixer_.weights()[i]);
    w.Key("taken");
    w.Uint64(mixer_.taken()[i]);
    w.Key("mixer_exhausted");
    w.Bool(mixer_.exhausted()[i]);
    for (auto [key, v] : {std::pair<const char*, uint64_t>{"epoch", c.epoch}, {"pos", c.pos}, {"visited", c.visited},
                          {"tokens", c.tokens}, {"docs", c.docs}, {"docs_this_epoch", c.docs_this_epoch},
                          {"skip_events", c.skip_events}}) {
      w.Key(key);
      w.Uint64(v);
    }
    w.Key("exhausted");
    w.Bool(c.exhausted);
    w.Key("skipped");
    w.StartArray();
    for (uint64_t s : c.skipped) w.Uint64(s);
    w.EndArray();
    w.Key("first_skips");
    w.StartArray();
    for (const auto& s : c.first_skips) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    w.EndArray();
    w.Key("first_reason");
    w.String(c.first_reason.c_str(), static_cast<rapidjson::SizeType>(c.first_reason.size()));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

void MixedStream::load_state(const std::string& json) {
  rapidjson::Document doc = parse_json(json, "data stream state");
  auto bad = [](const std::string& msg) { return DataError("data stream state does not fit these sources: " + msg); };
  if (!doc.IsObject() || !doc.HasMember("version") || !doc["version"].IsInt() || doc["version"].GetInt() != kStateVersion)
    throw bad(str("expected an object with version ", kStateVersion));
  if (!doc.HasMember("step") || !doc["step"].IsInt64() || !doc.HasMember("sources") || !doc["sources"].IsArray())
    throw bad("missing 'step' or 'sources'");
  const auto& arr = doc["sources"].GetArray();
  if (arr.Size() != cursors_.size())
    throw bad(str("it has ", arr.Size(), " sources, this stream has ", cursors_.size()));
  auto u64 = [&](const rapidjson::Value& o, const char* key, const std::string& name) -> uint64_t {
    if (!o.HasMember(key) || !o[key].IsUint64()) throw bad(str("source '", name, "': missing '", key, "'"));
    return o[key].GetUint64();
  };
  auto boolean = [&](const rapidjson::Value& o, const char* key, const std::string& name) -> bool {
    if (!o.HasMember(key) || !o[key].IsBool()) throw bad(str("source '", name, "': missing '", key, "'"));
    return o[key].GetBool();
  };
  struct Saved {
    uint64_t epoch, pos, visited, tokens, docs, docs_this_epoch, skip_events;
    bool exhausted;
    std::set<uint64_t> skipped;
    std::vector<std::string> first_skips;
    std::string first_reason;
  };
  std::vector<Saved> saved;  // everything is checked before anything is changed
  std::vector<double> weights;
  std::vector<uint64_t> taken;
  std::vector<bool> mixer_exhausted;
  for (size_t i = 0; i < arr.Size(); ++i) {
    const auto& o = arr[i];
    const Cursor& c = cursors_[i];
    if (!o.IsObject() || !o.HasMember("name") || !o["name"].IsString()) throw bad(str("source ", i, " has no name"));
    const std::string name = o["name"].GetString();
    if (name != c.cfg.name) throw bad(str("source ", i + 1, " is '", name, "', here '", c.cfg.name, "'"));
    if (!o.HasMember("kind") || !o["kind"].IsString() || std::string(o["kind"].GetString()) != c.cfg.source->kind())
      throw bad(str("source '", name, "' was not a ", c.cfg.source->kind(), " source"));
    const uint64_t records = u64(o, "records", name);
    if (records != c.cfg.source->size())
      throw bad(str("source '", name, "' had ", records, " records, now ", c.cfg.source->size(), " (the data changed?)"));
    if (u64(o, "seed", name) != c.seed) throw bad(str("source '", name, "' was shuffled with another seed"));
    if (!o.HasMember("weight") || !o["weight"].IsNumber()) throw bad(str("source '", name, "': missing 'weight'"));
    weights.push_back(o["weight"].GetDouble());
    taken.push_back(u64(o, "taken", name));
    mixer_exhausted.push_back(boolean(o, "mixer_exhausted", name));
    Saved s{u64(o, "epoch", name), u64(o, "pos", name), u64(o, "visited", name), u64(o, "tokens", name),
            u64(o, "docs", name), u64(o, "docs_this_epoch", name), u64(o, "skip_events", name),
            boolean(o, "exhausted", name), {}, {}, {}};
    if (!o.HasMember("first_reason") || !o["first_reason"].IsString())
      throw bad(str("source '", name, "': missing 'first_reason'"));
    s.first_reason.assign(o["first_reason"].GetString(), o["first_reason"].GetStringLength());
    if (s.pos > records) throw bad(str("source '", name, "': position ", s.pos, " past ", records, " records"));
    if (!o.HasMember("skipped") || !o["skipped"].IsArray() || !o.HasMember("first_skips") || !o["first_skips"].IsArray())
      throw bad(str("source '", name, "': missing skip lists"));
    for (const auto& v : o["skipped"].GetArray()) {
      if (!v.IsUint64() || v.GetUint64() >= records) throw bad(str("source '", name, "': bad skipped record"));
      s.skipped.insert(v.GetUint64());
    }
    for (const auto& v : o["first_skips"].GetArray()) {
      if (!v.IsString()) throw bad(str("source '", name, "': bad skip location"));
      s.first_skips.emplace_back(v.GetString(), v.GetStringLength());
    }
    saved.push_back(std::move(s));
  }
  try {
    mixer_.restore(weights, taken, mixer_exhausted);
  } catch (const UsageError& e) {
    throw bad(e.what());
  }
  for (size_t i = 0; i < saved.size(); ++i) {
    Cursor& c = cursors_[i];
    Saved& s = saved[i];
    c.epoch = s.epoch;
    c.pos = s.pos;
    c.visited = s.visited;
    c.tokens = s.tokens;
    c.docs = s.docs;
    c.docs_this_epoch = s.docs_this_epoch;
    c.skip_events = s.skip_events;
    c.exhausted = s.exhausted;
    c.skipped = std::move(s.skipped);
    c.first_skips = std::move(s.first_skips);
    c.first_reason = std::move(s.first_reason);
    build_order(c);
  }
  step_ = doc["step"].GetInt64();
}

}  // namespace mathrl::data
