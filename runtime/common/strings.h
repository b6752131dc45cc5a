// Small string utilities used across areas.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mathrl {

std::vector<std::string> split(std::string_view text, char sep);
std::string_view trim(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `wrong`, or "" when none is reasonably close.
std::string closest_match(std::string_view wrong, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "" — appended to unknown-name errors.
std::string did_you_mean(std::string_view wrong, const std::vector<std::string>& candidates);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Reads a whole file; throws DataError naming the path when it cannot.
std::string read_file(const std::string& path);
// Writes via a temporary file and rename, so readers never see half a file.
void write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace mathrl
