// Recipes: a Lua file returning a stage table built by a `mathrl.<stage>{...}` constructor.
// Loading runs the file in a full (trusted) Lua state, validates the table against the stage's
// schema, applies --set overrides and validates again, all before any heavy work.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lua_host.h"
#include "schema.h"

namespace mathrl {
class RunDir;
class Logger;
}

namespace mathrl::lua {

class Recipe;

// What a stage's runner receives.
struct RunContext {
  Recipe& recipe;
  RunDir& run;
  Logger& log;
  std::string resume_from;  // "" unless --resume was given
};

struct StageSpec {
  std::string name;     // constructor name: mathrl.<name>{...}
  std::string summary;  // one line for docs
  const Schema* schema = nullptr;
  std::function<int(RunContext&)> run;
};

// The stage registry. Areas add their stages through register_builtin_stages() (cli/stages.cpp).
void register_stage(StageSpec spec);
const std::vector<StageSpec>& registered_stages();
const StageSpec* find_stage(const std::string& name);

// Fields every stage has: name, seed, device. Stage schemas start with these.
std::vector<Field> common_stage_fields(const std::string& default_name);

// Where recipes/lib lives: $MATHRL_HOME/recipes/lib, else beside the executable (build/../recipes/lib).
std::string recipes_lib_dir();

class Recipe {
 public:
  // Throws RecipeError (exit status 2) for syntax, runtime, type and unknown-field errors.
  static Recipe load(const std::string& path, const std::vector<std::string>& overrides);

  Recipe(Recipe&&) noexcept = default;
  Recipe& operator=(Recipe&&) noexcept = default;

  lua_State* L() const { return state_.get(); }
  const StageSpec& stage() const { return *stage_; }
  const std::string& path() const { return path_; }

  // Pushes the value at a dotted path ("rl.beta"; "" = the whole recipe) onto the stack.
  void push(const std::string& dotted) const;
  bool has(const std::string& dotted) const;
  double number(const std::string& dotted) const;
  long long integer(const std::string& dotted) const;
  std::string string(const std::string& dotted) const;
  bool boolean(const std::string& dotted) const;
  // A NumberOrFunction field: the constant, or the function called with `step` (one protected call).
  double number_at(const std::string& dotted, long long step) const;

  // The recipe as Lua text with every default filled in (saved as recipe.resolved.lua in the run dir).
  std::string resolved() const;

 private:
  Recipe() = default;
  StatePtr state_;
  const StageSpec* stage_ = nullptr;
  std::string path_;
  int ref_ = LUA_NOREF;  // registry reference of the recipe table
};

// Installs the `mathrl` module (package.preload and a global) into a state.
void open_mathrl_module(lua_State* L);

// Submodules of `mathrl` (mathrl.tokenizer, mathrl.model, ...): `open` pushes the module table.
// Registered by the CLI (cli/stages.cpp) so the torch-free host does not link every area.
void register_submodule(const std::string& name, lua_CFunction open);

}  // namespace mathrl::lua
