#include "recipe.h"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::lua {

namespace {

std::vector<StageSpec>& stage_registry() {
  static std::vector<StageSpec> stages;
  return stages;
}

std::string executable_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  return std::filesystem::path(buf).parent_path().string();
}

// Walks a dotted path from the recipe table; leaves the value (or nil) on the stack.
void push_path(lua_State* L, int recipe_ref, const std::string& dotted) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, recipe_ref);
  if (dotted.empty()) return;
  for (const auto& part : split(dotted, '.')) {
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      return;
    }
    lua_getfield(L, -1, part.c_str());
    lua_remove(L, -2);
  }
}

}  // namespace

void register_stage(StageSpec spec) {
  for (auto& s : stage_registry())
    if (s.name == spec.name) {
      s = std::move(spec);
      return;
    }
  stage_registry().push_back(std::move(spec));
}

const std::vector<StageSpec>& registered_stages() { return stage_registry(); }

const StageSpec* find_stage(const std::string& name) {
  for (auto& s : stage_registry())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<Field> common_stage_fields(const std::string& default_name) {
  return {
      {"name", FieldType::String, "'" + default_name + "'", "run name; the run directory is runs/<name>-<time>"},
      {"seed", FieldType::Int, "1", "seed for data order, initialization, sampling and math.random in sandboxes"},
      {"device", FieldType::String, "'auto'", "cpu, cuda, cuda:N, or auto (cuda when available)"},
  };
}

std::string recipes_lib_dir() {
  if (const char* home = std::getenv("MATHRL_HOME"); home && *home) return str(home, "/recipes/lib");
  for (std::string dir : {executable_dir() + "/../recipes/lib", executable_dir() + "/recipes/lib"})
    if (std::filesystem::is_directory(dir)) return std::filesystem::weakly_canonical(dir).string();
  return "recipes/lib";
}

Recipe Recipe::load(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe r;
  r.path_ = path;
  r.state_.reset(luaL_newstate());
  if (!r.state_) throw Error("cannot create a Lua state (out of memory)");
  lua_State* L = r.L();
  luaL_openlibs(L);
  open_mathrl_module(L);

  // require() finds modules beside the recipe, then in recipes/lib.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  lua_getglobal(L, "package");
  std::string lib = recipes_lib_dir();
  std::string search = str(dir, "/?.lua;", dir, "/?/init.lua;", lib, "/?.lua;", lib, "/?/init.lua");
  lua_pushstring(L, search.c_str());
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);

  if (!std::filesystem::exists(path)) throw RecipeError(str(path, ": no such recipe file"));
  // Syntax errors surface here, as "path:line: message".
  if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_pop(L, 1);
    throw RecipeError(msg);
  }
  protected_call(L, 0, 1, "");
  if (!lua_istable(L, -1) || (lua_getfield(L, -1, "__stage"), lua_type(L, -1) != LUA_TSTRING)) {
    throw RecipeError(str(path, ": the recipe must return a stage table such as mathrl.rl{...}; it returned ",
                          lua_istable(L, -2) ? "a plain table" : luaL_typename(L, -2)));
  }
  std::string stage_name = lua_tostring(L, -1);
  lua_pop(L, 1);
  r.stage_ = find_stage(stage_name);
  MATHRL_CHECK(r.stage_ != nullptr, "stage '", stage_name, "' is not registered");
  lua_getfield(L, -1, "__where");
  std::string where = lua_isstring(L, -1) ? lua_tostring(L, -1) : path + ": ";
  lua_pop(L, 1);
  for (const auto& o : overrides) apply_override(L, -1, *r.stage_->schema, o);
  if (!overrides.empty()) validate(L, -1, *r.stage_->schema, "", "--set: ");
  (void)where;
  r.ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  return r;
}

void Recipe::push(const std::string& dotted) const { push_path(L(), ref_, dotted); }

bool Recipe::has(const std::string& dotted) const {
  push(dotted);
  bool present = !lua_isnil(L(), -1);
  lua_pop(L(), 1);
  return present;
}

namespace {
[[noreturn]] void wrong_type(lua_State* L, const std::string& dotted, const char* expected) {
  std::string got = luaL_typename(L, -1);
  lua_pop(L, 1);
  throw RecipeError(str("recipe field '", dotted, "' must be a ", expected, ", got ", got));
}
}  // namespace

double Recipe::number(const std::string& dotted) const {
  push(dotted);
  if (lua_type(L(), -1) != LUA_TNUMBER) wrong_type(L(), dotted, "number");
  double v = lua_tonumber(L(), -1);
  lua_pop(L(), 1);
  return v;
}

long long Recipe::integer(const std::string& dotted) const {
  push(dotted);
  if (!lua_isinteger(L(), -1)) wrong_type(L(), dotted, "integer");
  long long v = lua_tointeger(L(), -1);
  lua_pop(L(), 1);
  return v;
}

std::string Recipe::string(const std::string& dotted) const {
  push(dotted);
  if (lua_type(L(), -1) != LUA_TSTRING) wrong_type(L(), dotted, "string");
  std::string v = lua_tostring(L(), -1);
  lua_pop(L(), 1);
  return v;
}

bool Recipe::boolean(const std::string& dotted) const {
  push(dotted);
  if (lua_type(L(), -1) != LUA_TBOOLEAN) wrong_type(L(), dotted, "boolean");
  bool v = lua_toboolean(L(), -1);
  lua_pop(L(), 1);
  return v;
}

double Recipe::number_at(const std::string& dotted, long long step) const {
  push(dotted);
  if (lua_type(L(), -1) == LUA_TFUNCTION) {
    lua_pushinteger(L(), step);
    protected_call(L(), 1, 1, str("recipe function '", dotted, "'"));
  }
  if (lua_type(L(), -1) != LUA_TNUMBER) wrong_type(L(), dotted, "number (or a function returning one)");
  double v = lua_tonumber(L(), -1);
  lua_pop(L(), 1);
  return v;
}

std::string Recipe::resolved() const {
  push("");
  std::string body = describe_value(L(), -1);
  lua_pop(L(), 1);
  return str("-- resolved from ", path_, " (defaults filled in, --set applied)\nreturn mathrl.", stage_->name, " ",
             body, "\n");
}

}  // namespace mathrl::lua
