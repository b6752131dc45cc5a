// Recipe fields for Lua rewards, and turning a validated recipe table into RewardSpecs.
//
//   rewards = {
//     { name = "correct", builtin = "correct", weight = 1.0 },
//     { name = "format",  builtin = "format",  weight = 0.1, options = { think = false } },
//     { name = "length",  builtin = "length",  weight = 1.0, options = { max_len = 4096, cache = 512 } },
//     { name = "mine",    file = "rewards/mine.lua", fn = "reward", weight = 0.5, on_error = -1 },
//     { name = "short",   code = "return function(s) return #s.completion < 2000 and 0.1 or 0 end" },
//   },
//   reward_limits = { instructions = 20000000, memory_mb = 64, threads = 4, on_error = 0, trial_samples = 8 },
//
// Exactly one of file / code / builtin per entry. `file` is relative to the recipe's directory
// and is watched for hot-swap. Stage schemas embed reward_recipe_fields().
#pragma once
#include <string>
#include <vector>

#include "recipe.h"
#include "reward/reward_host.h"
#include "schema.h"

namespace mathrl::reward_lua {

const lua::Schema& reward_entry_schema();   // one element of `rewards`
const lua::Schema& reward_limits_schema();  // the `reward_limits` section
// The two fields above, ready to append to a stage schema's field list.
std::vector<lua::Field> reward_recipe_fields();

struct RewardConfig {
  std::vector<RewardSpec> specs;
  RewardHostOptions options;
};

// Reads `rewards` and `reward_limits` from the table at `idx` (validating each entry; the table
// itself is expected to have passed the stage schema). Relative files resolve against `base_dir`;
// `seed` is the run's seed; `where` prefixes messages ("recipes/rl.lua: "). The module search path
// is `base_dir` then recipes/lib. Throws RecipeError.
RewardConfig reward_config_from_lua(lua_State* L, int idx, const std::string& base_dir, uint64_t seed,
                                    const std::string& where = "", const std::string& path = "");

// Same, for the section at `dotted` ("" = the recipe table itself) of a loaded recipe; the seed
// is the recipe's `seed` field when it has one.
RewardConfig reward_config_from_recipe(const lua::Recipe& recipe, const std::string& dotted = "");

// A Lua table literal for plain data (numbers, strings, booleans, nested tables). Throws RecipeError
// naming `what` for anything else (functions cannot cross into the sandbox).
std::string to_lua_literal(lua_State* L, int idx, const std::string& what, int depth = 0);

}  // namespace mathrl::reward_lua
