#include "sampler/engine.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <map>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::sampler {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Slot {
  bool active = false;
  size_t request = 0;
  int sample = 0;
  int64_t pos = 0;       // next cache position to write (= tokens in the cache + 1 pending)
  int max_new = 0;
  int64_t prefix_owner = -1;  // shared prefixes: the slot holding this sample's prompt, when not its own
  int64_t leader = -1;  // identical samples: the slot decoding for this one (same tokens so far); -1 = itself
  Completion out;
};

struct RequestState {
  int admitted = 0;
  torch::Tensor first_logits;  // the prefill's last logits, kept until every sample is admitted
  int64_t prompt_owner = -1;   // shared prefixes: the slot holding the prompt's KV, while one does
};

// After a step in which some samples sampled from their leader's row: a member whose token differs
// from the leader's leaves the class. Members that drew the same new token form a class of their
// own, led by the first of them, which takes a copy of the old leader's cache rows past the prompt
// (positions [prompt, pos], the last one written by this step). Returns the copies made.
int64_t split_diverged(std::vector<Slot>& slots, const std::vector<size_t>& live, const std::vector<int32_t>& tokens,
                       DecodeBackend& backend) {
  std::vector<int64_t> k_of(slots.size(), -1);
  for (size_t k = 0; k < live.size(); ++k) k_of[live[k]] = static_cast<int64_t>(k);
  std::map<std::pair<int64_t, int32_t>, int64_t> new_leader;  // (old leader, token) -> new leader
  std::map<int64_t, std::vector<int64_t>> forks;               // old leader -> slots taking its rows
  for (size_t k = 0; k < live.size(); ++k) {
    Slot& s = slots[live[k]];
    if (s.leader < 0) continue;
    const int32_t lead_token = tokens[static_cast<size_t>(k_of[static_cast<size_t>(s.leader)])];
    if (tokens[k] == lead_token) continue;
    auto [it, fresh] = new_leader.try_emplace({s.leader, tokens[k]}, static_cast<int64_t>(live[k]));
    if (fresh) forks[s.leader].push_back(static_cast<int64_t>(live[k]));
    s.leader = fresh ? -1 : it->second;
  }
  int64_t copies = 0;
  for (const auto& [src, dsts] : forks) {
    const Slot& lead = slots[static_cast<size_t>(src)];
    backend.copy_positions(src, dsts, lead.out.prompt_tokens, lead.pos + 1);
    copies += static_cast<int64_t>(dsts.size());
  }
  return copies;
}

}  // namespace

Engine::Engine(DecodeBackend& backend, EngineOptions options) : backend_(backend), options_(std::move(options)) {
  const char* share = std::getenv("MATHRL_SHARE_SAMPLES");
  if (share && std::string(share) == "0") options_.share_identical_samples = false;
  if (options_.max_batch < 1) throw UsageError(str("bad argument 'max_batch' to engine: must be >= 1 (got ", options_.max_batch, ")"));
}

void Engine::validate(const std::vector<Request>& requests) const {
  const int64_t V = backend_.vocab_size(), ctx = backend_.max_context();
  for (size_t r = 0; r < requests.size(); ++r) {
    const Request& q = requests[r];
    auto where = [&](const char* field) { return str("request ", r, ": '", field, "' "); };
    if (q.prompt_ids.empty()) throw UsageError(where("prompt") + "is empty (a prompt needs at least one token)");
    if (static_cast<int64_t>(q.prompt_ids.size()) >= ctx)
      throw UsageError(where("prompt") + str("has ", q.prompt_ids.size(), " tokens; the model's context is ", ctx,
                                             " and must leave room for at least one new token"));
    for (size_t i = 0; i < q.prompt_ids.size(); ++i)
      if (q.prompt_ids[i] < 0 || q.prompt_ids[i] >= V)
        throw UsageError(where("prompt") + str("token ", i, " is id ", q.prompt_ids[i], ", outside the vocabulary [0, ", V, ")"));
    if (q.n < 1) throw UsageError(where("n") + str("must be >= 1 (got ", q.n, ")"));
    if (q.max_new_tokens < 1) throw UsageError(where("max_new_tokens") + str("must be >= 1 (got ", q.max_new_tokens, ")"));
    for (const auto& s : q.stop)
      if (s.empty()) throw UsageError(where("stop") + "contains an empty string");
    if (!q.stop.empty() && !options_.tokenizer) throw UsageError(where("stop") + "needs a tokenizer to match text");
    try {
      q.params.validate();
    } catch (const UsageError& e) {
      throw UsageError(str("request ", r, ": ", e.what()));
    }
  }
}

std::vector<Completion> Engine::generate(const std::vector<Request>& requests,
                                         const std::function<void(const Completion&)>& on_done) {
  torch::NoGradGuard no_grad;
  validate(requests);
  std::vector<Completion> results;
  if (requests.empty()) return results;

  const int64_t ctx = backend_.max_context();
  int64_t max_len = 0, units = 0;
  std::vector<int> max_new(requests.size());
  std::vector<size_t> first_result(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    const auto L = static_cast<int64_t>(requests[r].prompt_ids.size());
    max_new[r] = static_cast<int>(std::min<int64_t>(requests[r].max_new_tokens, ctx - L));
    // The last sampled token is never written to the cache, hence L + max_new - 1 positions.
    max_len = std::max(max_len, L + max_new[r] - 1);
    first_result[r] = static_cast<size_t>(units);
    units += requests[r].n;
  }
  results.resize(static_cast<size_t>(units));
  const int64_t num_slots = std::min(options_.max_batch, units);
  backend_.allocate(num_slots, std::max<int64_t>(max_len, 1));

  std::deque<std::pair<size_t, int>> waiting;
  for (size_t r = 0; r < requests.size(); ++r)
    for (int j = 0; j < requests[r].n; ++j) waiting.emplace_back(r, j);
  std::vector<RequestState> req_state(requests.size());
  std::vector<Slot> slots(static_cast<size_t>(num_slots));

  const Tokenizer* tok = options_.tokenizer;
  size_t max_stop_bytes = 0;
  std::string stop_last_bytes;  // the last byte of every stop string
  for (const auto& q : requests)
    for (const auto& s : q.stop) {
      max_stop_bytes = std::max(max_stop_bytes, s.size());
      if (stop_last_bytes.find(s.back()) == std::string::npos) stop_last_bytes += s.back();
    }
  // A stop string first appears in the text with the token that brings its last byte. Decoders
  // concatenate token texts, except that a token's text alone may lose a leading space or be an
  // incomplete UTF-8 sequence (byte-level and byte-fallback tokens): such tokens (empty text, or
  // U+FFFD in it) always count as possible. Decoding the tail is costly (a SentencePiece decode per
  // row and step); this per-token verdict, memoized, skips it for almost every token.
  std::vector<int8_t> may_end_stop;  // -1 unknown, 0 no, 1 maybe
  if (!stop_last_bytes.empty()) may_end_stop.assign(static_cast<size_t>(backend_.vocab_size()), -1);
  auto may_complete_stop = [&](int32_t token) {
    int8_t& v = may_end_stop[static_cast<size_t>(token)];
    if (v < 0) {
      const std::string text = tok->decode({token});
      v = text.empty() || text.find("\xEF\xBF\xBD") != std::string::npos ||
                  text.find_first_of(stop_last_bytes) != std::string::npos
              ? 1
              : 0;
    }
    return v == 1;
  };

  // Shared prefixes: pins[i] counts the live samples reading slot i's prompt besides its own; a
  // slot is free when it is inactive and unpinned.
  const bool sharing = backend_.shares_prefixes();
  std::vector<int> pins(slots.size(), 0);
  std::vector<int64_t> prompt_of(slots.size(), -1);  // the request whose prompt a slot holds (sharing)
  auto is_free = [&](size_t i) { return !slots[i].active && pins[i] == 0; };
  auto release_if_free = [&](size_t i) {
    if (!is_free(i) || prompt_of[i] < 0) return;
    req_state[static_cast<size_t>(prompt_of[i])].prompt_owner = -1;
    prompt_of[i] = -1;
  };

  auto finish = [&](Slot& s, const char* reason) {
    s.out.finish_reason = reason;
    if (tok && std::string(reason) != "stop") {  // "stop" already set the cut text
      std::vector<int32_t> ids = s.out.ids;
      if (std::string(reason) == "eos") ids.pop_back();
      s.out.text = tok->decode(ids);
    }
    if (on_done) on_done(s.out);
    results[first_result[s.request] + static_cast<size_t>(s.sample)] = std::move(s.out);
    const int64_t owner = s.prefix_owner;
    s = Slot{};
    release_if_free(static_cast<size_t>(&s - slots.data()));
    if (owner >= 0) {
      --pins[static_cast<size_t>(owner)];
      release_if_free(static_cast<size_t>(owner));
    }
  };

  // Appends a sampled token; returns true when the sequence is finished (and the slot freed).
  auto push_token = [&](Slot& s, int32_t token, float logprob) {
    const Request& q = requests[s.request];
    s.out.ids.push_back(token);
    s.out.logprobs.push_back(logprob);
    ++stats_.generated_tokens;
    if (!q.ignore_eos && std::find(options_.eos_ids.begin(), options_.eos_ids.end(), token) != options_.eos_ids.end()) {
      finish(s, "eos");
      return true;
    }
    if (!q.stop.empty() && may_complete_stop(token)) {
      ++stats_.stop_checks;
      // Cheap check on the tail first; a stop string of b bytes spans at most b tokens (+1 for a
      // token split inside a UTF-8 character).
      size_t window = std::min(s.out.ids.size(), max_stop_bytes + 2);
      std::vector<int32_t> tail(s.out.ids.end() - static_cast<std::ptrdiff_t>(window), s.out.ids.end());
      std::string tail_text = tok->decode(tail);
      bool maybe = false;
      for (const auto& stop : q.stop) maybe |= tail_text.find(stop) != std::string::npos;
      if (maybe) {
        std::string text = tok->decode(s.out.ids);
        size_t cut = std::string::npos;
        for (const auto& stop : q.stop) cut = std::min(cut, text.find(stop));
        if (cut != std::string::npos) {
          s.out.text = text.substr(0, cut);
          finish(s, "stop");
          return true;
        }
      }
    }
    if (static_cast<int>(s.out.ids.size()) >= s.max_new) {
      finish(s, "length");
      return true;
    }
    return false;
  };

  auto row_spec = [&](const Slot& s) {
    const Request& q = requests[s.request];
    return RowSpec{q.params, mix_seed(q.seed, static_cast<uint64_t>(s.sample)), s.out.ids.size()};
  };

  while (true) {
    // 1. Admit waiting samples into free slots; sample their first token from the prompt's logits.
    //    Prompts new to the cache are prefilled together (prefill_many), then the other samples of
    //    each prompt copy its KV rows (copy_prefix_to), then every admitted slot samples at once.
    std::vector<size_t> admitted;
    std::vector<size_t> to_prefill;                      // slots whose prompt runs through the model
    std::vector<std::pair<size_t, int64_t>> to_copy;     // (slot, source slot holding the prompt)
    std::vector<int64_t> prompt_slot(requests.size(), -1);  // slot holding request r's prompt this round
    std::vector<DecodeBackend::PrefixShare> shares;
    for (size_t i = 0; i < slots.size() && !waiting.empty(); ++i) {
      if (!is_free(i)) continue;
      auto [r, j] = waiting.front();
      waiting.pop_front();
      const Request& q = requests[r];
      const auto L = static_cast<int64_t>(q.prompt_ids.size());
      Slot& s = slots[i];
      s.active = true;
      s.request = r;
      s.sample = j;
      s.pos = L;
      s.max_new = max_new[r];
      s.out = Completion{};
      s.out.request = r;
      s.out.sample = j;
      s.out.prompt_tokens = static_cast<int>(L);
      RequestState& rs = req_state[r];
      if (sharing) {
        // The prompt's slot (from this round or an earlier one) serves every later sample.
        if (rs.prompt_owner >= 0) {
          s.prefix_owner = rs.prompt_owner;
          ++pins[static_cast<size_t>(rs.prompt_owner)];
          shares.push_back({static_cast<int64_t>(i), rs.prompt_owner, L});
        } else {
          to_prefill.push_back(i);
          rs.prompt_owner = static_cast<int64_t>(i);
          prompt_of[i] = static_cast<int64_t>(r);
          shares.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i), L});
        }
        admitted.push_back(i);
        continue;
      }
      if (prompt_slot[r] < 0 && rs.first_logits.defined()) {
        // Any live sibling from an earlier round still holds the prompt's KV in positions [0, L).
        for (size_t k = 0; k < slots.size(); ++k)
          if (k != i && slots[k].active && slots[k].request == r && !slots[k].out.ids.empty())
            prompt_slot[r] = static_cast<int64_t>(k);
      }
      if (prompt_slot[r] >= 0) {
        to_copy.emplace_back(i, prompt_slot[r]);
      } else {
        to_prefill.push_back(i);
        prompt_slot[r] = static_cast<int64_t>(i);
      }
      admitted.push_back(i);
    }
    if (!admitted.empty()) {
      auto t0 = Clock::now();
      // Prefill in batches of about kPrefillTokens prompt tokens.
      constexpr int64_t kPrefillTokens = 8192;
      for (size_t at = 0; at < to_prefill.size();) {
        std::vector<torch::Tensor> ids;
        std::vector<int64_t> where;
        int64_t tokens = 0;
        while (at < to_prefill.size()) {
          const Request& q = requests[slots[to_prefill[at]].request];
          const auto L = static_cast<int64_t>(q.prompt_ids.size());
          if (!ids.empty() && tokens + L > kPrefillTokens) break;
          ids.push_back(torch::tensor(std::vector<int64_t>(q.prompt_ids.begin(), q.prompt_ids.end()), torch::kInt64)
                            .to(backend_.device()));
          where.push_back(static_cast<int64_t>(to_prefill[at]));
          tokens += L;
          ++at;
        }
        auto logits = backend_.prefill_many(ids, where);
        for (size_t k = 0; k < where.size(); ++k) {
          req_state[slots[static_cast<size_t>(where[k])].request].first_logits = logits[k].reshape({-1});
          ++stats_.prefills;
        }
        stats_.prompt_tokens += tokens;
      }
      // Prefix copies, one call per source slot.
      std::map<int64_t, std::vector<int64_t>> copies;
      for (auto [dst, src] : to_copy) copies[src].push_back(static_cast<int64_t>(dst));
      for (const auto& [src, dsts] : copies) {
        const auto L = static_cast<int64_t>(requests[slots[static_cast<size_t>(src)].request].prompt_ids.size());
        backend_.copy_prefix_to(src, dsts, L);
        stats_.prefix_copies += static_cast<int64_t>(dsts.size());
      }
      if (!shares.empty()) {
        backend_.share_prefix(shares);
        stats_.prefix_shares += static_cast<int64_t>(shares.size()) - static_cast<int64_t>(to_prefill.size());
      }
      stats_.prefill_seconds += seconds_since(t0);
    }
    std::vector<torch::Tensor> first_logits;
    for (size_t i : admitted) {
      RequestState& rs = req_state[slots[i].request];
      first_logits.push_back(rs.first_logits);
      if (++rs.admitted == requests[slots[i].request].n) rs.first_logits = torch::Tensor();
    }
    if (!admitted.empty()) {
      std::vector<RowSpec> rows;
      for (size_t i : admitted) rows.push_back(row_spec(slots[i]));
      auto res = sampler_.sample(torch::stack(first_logits), rows);
      if (options_.share_identical_samples) {
        // Samples of one request admitted together with the same first token form one class.
        std::map<std::pair<size_t, int32_t>, int64_t> leader_of;
        for (size_t k = 0; k < admitted.size(); ++k) {
          auto [it, fresh] = leader_of.try_emplace({slots[admitted[k]].request, res.tokens[k]}, static_cast<int64_t>(admitted[k]));
          slots[admitted[k]].leader = fresh ? -1 : it->second;
        }
      }
      for (size_t k = 0; k < admitted.size(); ++k) push_token(slots[admitted[k]], res.tokens[k], res.logprobs[k]);
      // A sample that finished on its first token frees its slot: admit again before decoding.
      bool any_free = false;
      for (size_t i = 0; i < slots.size(); ++i) any_free |= is_free(i);
      if (any_free && !waiting.empty()) continue;
    }

    // 2. One decode step over every live slot.
    std::vector<size_t> live;
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i].active) live.push_back(i);
    if (live.empty()) {
      if (waiting.empty()) break;
      continue;
    }
    // Only class leaders run through the model; every live slot samples from its leader's row.
    std::vector<int64_t> tokens, positions, slot_ids;
    std::vector<int64_t> row_of_slot(slots.size(), -1);
    std::vector<RowSpec> rows;
    for (size_t i : live) {
      rows.push_back(row_spec(slots[i]));
      if (slots[i].leader >= 0) continue;
      row_of_slot[i] = static_cast<int64_t>(tokens.size());
      tokens.push_back(slots[i].out.ids.back());
      positions.push_back(slots[i].pos);
      slot_ids.push_back(static_cast<int64_t>(i));
    }
    auto dev = backend_.device();
    if (options_.before_decode_step) options_.before_decode_step(stats_.decode_steps);
    auto t0 = Clock::now();
    auto logits = backend_.decode(torch::tensor(tokens, torch::kInt64).to(dev), torch::tensor(positions, torch::kInt64).to(dev),
                                  torch::tensor(slot_ids, torch::kInt64).to(dev));
    if (tokens.size() < live.size()) {
      std::vector<int64_t> gather;
      for (size_t i : live) {
        const size_t lead = slots[i].leader >= 0 ? static_cast<size_t>(slots[i].leader) : i;
        MATHRL_CHECK(row_of_slot[lead] >= 0, "slot ", i, " follows slot ", lead, ", which is not decoding");
        gather.push_back(row_of_slot[lead]);
      }
      logits = logits.index_select(0, torch::tensor(gather, torch::kInt64).to(dev));
    }
    if (options_.split_timing) {
      if (dev.is_cuda()) torch::cuda::synchronize(dev.index());
      stats_.forward_seconds += seconds_since(t0);
    }
    auto t_sample = Clock::now();
    auto res = sampler_.sample(logits, rows);
    if (options_.split_timing) stats_.sample_seconds += seconds_since(t_sample);
    stats_.decode_seconds += seconds_since(t0);
    if (options_.after_decode_step) options_.after_decode_step(stats_.decode_steps);
    ++stats_.decode_steps;
    stats_.decoded_rows += static_cast<int64_t>(tokens.size());
    stats_.sampled_rows += static_cast<int64_t>(live.size());
    auto t_host = Clock::now();
    if (tokens.size() < live.size()) stats_.forks += split_diverged(slots, live, res.tokens, backend_);
    for (size_t k = 0; k < live.size(); ++k) {
      Slot& s = slots[live[k]];
      ++s.pos;
      push_token(s, res.tokens[k], res.logprobs[k]);
    }
    stats_.host_seconds += seconds_since(t_host);
  }
  return results;
}

}  // namespace mathrl::sampler
