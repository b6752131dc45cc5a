// Data sources: a source is a fixed list of records (JSONL lines, text files or lines, shard
// documents) read by index, so a mix can shuffle the order per epoch and resume from a cursor.
// Reading a record either fills a Document or says why the record is skipped (malformed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <rapidjson/document.h>

#include "data/stream.h"

namespace mathrl {
class Tokenizer;
}

namespace mathrl::data {

// What a JSONL mapping function makes of one record: a whole text (every token a target) or a
// prompt/response pair (loss on the response tokens only).
struct Mapped {
  std::string text;      // when !is_pair
  std::string prompt;    // when is_pair
  std::string response;  // when is_pair
  bool is_pair = false;
  static Mapped whole(std::string text) { return Mapped{std::move(text), {}, {}, false}; }
  static Mapped pair(std::string prompt, std::string response) {
    return Mapped{{}, std::move(prompt), std::move(response), true};
  }
};
// nullopt = the record does not fit (missing field, wrong type): it is skipped and counted. A mapper
// may also throw mathrl::Error (e.g. a Lua error): the record is skipped with that message, or the
// run stops in strict mode. `line` is 1-based.
using Mapper = std::function<std::optional<Mapped>(const rapidjson::Value& record, size_t line)>;

// Mappers for the common layouts: a string field, or two string fields as prompt and response.
Mapper field_mapper(std::string field);
Mapper prompt_response_mapper(std::string prompt_field, std::string response_field);

// Tokenizes a mapped record: BOS first when `add_bos` and the tokenizer has one (mask 0 in pairs),
// then the text, or the prompt (mask 0) followed by the response (mask 1), tokenized separately so
// the boundary is exact. No EOS: the packer appends it. Text documents get an empty mask.
void encode_mapped(const Tokenizer& tokenizer, bool add_bos, const Mapped& mapped, Document& out);

class Source {
 public:
  virtual ~Source() = default;
  // Records per epoch, in file order (indexed when the source is opened).
  virtual size_t size() const = 0;
  // Reads record i (0 <= i < size()) into out.tokens / out.loss_mask. Returns "" on success, else
  // the reason the record is skipped ("invalid JSON at offset 3: ...", "invalid UTF-8").
  // Throws DataError for problems of the whole source (file vanished).
  virtual std::string read(size_t i, Document& out) = 0;
  // "path:line" (or "path[doc 3]") of record i, for messages.
  virtual std::string locate(size_t i) const = 0;
  // One word for reports: "jsonl", "text", "shard".
  virtual const char* kind() const = 0;
};

}  // namespace mathrl::data
