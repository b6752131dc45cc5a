#include "cli/stages.h"

#include <mutex>

#include "recipe.h"
#include "script_stage.h"
#include "modules/dist_module.h"
#include "modules/model_module.h"
#include "modules/tokenizer_module.h"

namespace mathrl::cli {

void register_builtin_stages() {
  static std::once_flag once;
  std::call_once(once, [] {
    lua::register_stage(lua::script_stage());
    lua::register_submodule("tokenizer", lua::open_tokenizer_module);
    lua::register_submodule("dist", lua::open_dist_module);
    lua::register_submodule("model", lua::open_model_module);
  });
}

}  // namespace mathrl::cli
