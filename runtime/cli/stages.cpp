#include "cli/stages.h"

#include <mutex>

#include "recipe.h"
#include "script_stage.h"
#ifdef MATHRL_HAVE_LUA_MODULES
#include "modules/tokenizer_module.h"
#endif

namespace mathrl::cli {

void register_builtin_stages() {
  static std::once_flag once;
  std::call_once(once, [] {
    lua::register_stage(lua::script_stage());
#ifdef MATHRL_HAVE_LUA_MODULES
    lua::register_submodule("tokenizer", lua::open_tokenizer_module);
#endif
  });
}

}  // namespace mathrl::cli
