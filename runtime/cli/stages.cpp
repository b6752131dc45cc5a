#include "cli/stages.h"

#include <mutex>

#include "recipe.h"

namespace mathrl::lua {
std::vector<Field> common_stage_fields() {
  return {
      {"name", FieldType::String, "", "run name; the run directory is runs/<name>-<time>"},
      {"seed", FieldType::Int, "1", "seed for data order, initialization, sampling and math.random in sandboxes"},
      {"device", FieldType::String, "'auto'", "cpu, cuda, cuda:N, or auto (cuda when available)"},
  };
}
}  // namespace mathrl::lua

namespace mathrl::cli {

void register_builtin_stages() {
  static std::once_flag once;
  std::call_once(once, [] {
  });
}

}  // namespace mathrl::cli
