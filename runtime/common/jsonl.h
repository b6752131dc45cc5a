// JSON Lines input/output shared by the CLI tools (tokenize, grade, logprobs, generate, eval).
#pragma once
#include <cstdio>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace mathrl {

// Reads lines from a file, or from stdin when path is "-" or empty. Strips the trailing '\n' / "\r\n".
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool next(std::string& line);
  size_t line_number() const { return line_number_; }
  const std::string& name() const { return name_; }

 private:
  FILE* file_ = nullptr;
  bool owns_ = false;
  size_t line_number_ = 0;
  std::string name_;
};

// Parses one JSON document; throws DataError("<where>: invalid JSON at offset N: reason").
rapidjson::Document parse_json(std::string_view text, const std::string& where);

// Serializes a value compactly (one line, UTF-8 kept as is).
std::string to_json(const rapidjson::Value& value);

// Appends `text` as a quoted JSON string. Invalid UTF-8 bytes become U+FFFD so output stays valid JSON.
void append_json_string(std::string& out, std::string_view text);

}  // namespace mathrl
