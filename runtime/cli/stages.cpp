#include "cli/stages.h"

#include <mutex>

#include "recipe.h"
#include "report/report_module.h"
#include "run_stage.h"
#include "script_stage.h"
#include "train/train_stage.h"
#include "eval/eval_module.h"
#include "modules/dist_module.h"
#include "modules/model_module.h"
#include "modules/tokenizer_module.h"
#include "rl/rl_module.h"
#include "rl/rl_stage.h"

namespace mathrl::cli {

void register_builtin_stages() {
  static std::once_flag once;
  std::call_once(once, [] {
    lua::register_stage(lua::script_stage());
    lua::register_submodule("tokenizer", lua::open_tokenizer_module);
    lua::register_submodule("dist", lua::open_dist_module);
    lua::register_submodule("model", lua::open_model_module);
    lua::register_submodule("report", lua::open_report_module);
    lua::register_submodule("run_recipe", lua::open_run_recipe);  // a function: mathrl.run_recipe(path, opts)
    lua::register_submodule("eval", lua::open_eval_module);
    lua::register_stage(lua::rl_stage());
    lua::register_stage(lua::base_stage());
    lua::register_stage(lua::instruct_stage());
    lua::register_submodule("rl", lua::open_rl_module);
  });
}

}  // namespace mathrl::cli
