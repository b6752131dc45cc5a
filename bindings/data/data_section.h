// The recipe's `data` section: sources, mixing weights (constants or Lua functions of the step),
// epochs/caps, shuffling and strictness, and the builder that turns it into a DocumentStream.
//
//   data = {
//     strict = false,        -- a malformed record stops the run (file:line) instead of being skipped
//     bos = true,            -- start every document with the tokenizer's BOS (when it has one)
//     sources = {
//       { name = "gsm8k", path = "../shared/data/gsm8k/train.jsonl", format = "jsonl", weight = 0.7,
//         text = function(ex) return ex.question .. "\n" .. ex.answer end },         -- whole text is a target
//       { name = "math", path = "...", weight = function(step) return 0.3 end, epochs = 2,
//         template = function(ex) return { prompt = ex.problem .. "\n...", response = ex.solution } end },
//       { name = "shard", path = "x.bin", format = "shard", max_tokens = 1e6 },   -- mathrl tokenize --shard
//       { name = "txt", path = "dir_or_file", format = "text", per_line = false },
//     },
//   }
//
// Paths are relative to the working directory. A JSONL record reaches `text`/`template` as a Lua
// table (objects keyed by name, arrays 1-based, JSON null absent). Returning nil skips the record (it
// is counted, like invalid JSON or invalid UTF-8); a Lua error in the function also skips it, with the
// recipe's file:line in the log, and stops the run in strict mode. Without `text` or `template` a JSONL
// source reads the string field `field` (default "text"). Prompt/response pairs: prompt tokens (and
// BOS) carry loss mask 0, response tokens 1, each side tokenized separately; the packer adds EOS.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include <lua.hpp>
#include <rapidjson/document.h>

#include "data/stream.h"
#include "schema.h"

namespace mathrl {
class Tokenizer;
}

namespace mathrl::lua {

const Schema& data_section_schema();  // for a FieldType::Section field named `data`
const Schema& data_source_schema();   // one element of data.sources

// Builds the stream from the validated `data` table at stack index idx of the recipe state L.
// Lua mapping functions and weight functions are called back through protected_call on L, so the
// stream must be used on L's thread and destroyed before L is closed (it keeps registry references
// to the functions, released with the state). `seed` seeds the per-source shuffles; `where` prefixes
// messages ("recipes/base.lua: "). Throws RecipeError for a bad source entry (unknown field, negative
// weight, `text` on a shard source...), DataError for unreadable data (truncated shard...). `warn`
// receives skip messages (default: stderr). `path` names the section in messages ("eval_data." for a
// second section with this schema).
std::unique_ptr<data::DocumentStream> make_document_stream(lua_State* L, int idx, const Tokenizer& tokenizer,
                                                           uint64_t seed, const std::string& where,
                                                           std::function<void(const std::string&)> warn = {},
                                                           const std::string& path = "data.");


}  // namespace mathrl::lua
