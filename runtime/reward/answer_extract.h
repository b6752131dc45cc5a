// Final-answer extraction from a model completion or a reference solution.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mathrl {

struct ExtractOptions {
  // When no explicit marker is found, take the last number in the text (GSM8K-style grading).
  bool last_number_fallback = true;
};

// The final answer, tried in order: the last \boxed{...} / \boxed X / \fbox{...} (nested braces);
// "The answer is ..." / "the final answer is ..."; GSM8K "#### N"; Chinese markers (答案是, 答案为,
// 故答案为, 最终答案); the last number (when allowed). nullopt when nothing is found.
std::optional<std::string> extract_answer(std::string_view text, const ExtractOptions& options = {});

// True when `text` carries an explicit answer marker (\boxed, \fbox, ####): used to decide whether
// a gold reference is a full solution or already an answer.
bool has_answer_marker(std::string_view text);

}  // namespace mathrl
