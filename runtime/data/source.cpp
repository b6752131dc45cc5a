#include "data/source.h"

#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace mathrl::data {
namespace {

// The string field `name` of an object record, or nullopt when missing or not a string.
std::optional<std::string> string_field(const rapidjson::Value& record, const std::string& name) {
  if (!record.IsObject()) return std::nullopt;
  auto it = record.FindMember(name.c_str());
  if (it == record.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

Mapper field_mapper(std::string field) {
  return [field = std::move(field)](const rapidjson::Value& record, size_t) -> std::optional<Mapped> {
    auto text = string_field(record, field);
    if (!text) return std::nullopt;
    return Mapped::whole(std::move(*text));
  };
}

Mapper prompt_response_mapper(std::string prompt_field, std::string response_field) {
  return [p = std::move(prompt_field), r = std::move(response_field)](const rapidjson::Value& record,
                                                                      size_t) -> std::optional<Mapped> {
    auto prompt = string_field(record, p);
    auto response = string_field(record, r);
    if (!prompt || !response) return std::nullopt;
    return Mapped::pair(std::move(*prompt), std::move(*response));
  };
}

void encode_mapped(const Tokenizer& tokenizer, bool add_bos, const Mapped& mapped, Document& out) {
  out.tokens.clear();
  out.loss_mask.clear();
  if (add_bos && tokenizer.bos_id() >= 0) out.tokens.push_back(tokenizer.bos_id());
  if (!mapped.is_pair) {
    tokenizer.encode_into(mapped.text, false, out.tokens);
    return;
  }
  tokenizer.encode_into(mapped.prompt, false, out.tokens);
  const size_t prompt_end = out.tokens.size();
  tokenizer.encode_into(mapped.response, false, out.tokens);
  out.loss_mask.assign(out.tokens.size(), 1);
  std::fill(out.loss_mask.begin(), out.loss_mask.begin() + static_cast<std::ptrdiff_t>(prompt_end), 0);
}

}  // namespace mathrl::data
