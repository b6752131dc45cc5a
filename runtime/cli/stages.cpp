#include "cli/stages.h"

#include <mutex>

#include "recipe.h"
#include "script_stage.h"

namespace mathrl::cli {

void register_builtin_stages() {
  static std::once_flag once;
  std::call_once(once, [] {
    lua::register_stage(lua::script_stage());
  });
}

}  // namespace mathrl::cli
