// Recipe schemas: each stage declares its fields (type, default, doc) as data. Validation fills
// defaults, checks types, recurses into sections and rejects unknown fields with the closest valid
// name, so a typo never silently falls back to a default.
#pragma once
#include <string>
#include <vector>

#include <lua.hpp>

namespace mathrl::lua {

enum class FieldType {
  Any,       // anything (validated by the stage itself)
  Bool,
  Int,
  Number,
  String,
  Function,
  NumberOrFunction,  // a constant or a function of the step (schedules, curricula)
  Table,     // free-form table (mixes, per-source options)
  List,      // array-like table
  Section,   // nested table validated by `section`
};

struct Schema;

struct Field {
  std::string name;
  FieldType type = FieldType::Any;
  std::string default_lua;  // Lua expression evaluated for a missing field; "" = stays nil
  std::string doc;
  const Schema* section = nullptr;   // for FieldType::Section
  std::vector<std::string> choices;  // allowed values for a String field (empty = any)
  bool required = false;
};

struct Schema {
  std::string name;
  std::vector<Field> fields;
  const Field* find(const std::string& name) const;
  std::vector<std::string> names() const;
};

const char* field_type_name(FieldType t);

// Validates the table at `idx` in place. `path` prefixes field names in messages ("rl."), `where`
// prefixes the whole message ("recipes/rl.lua:3: "). Throws RecipeError.
void validate(lua_State* L, int idx, const Schema& schema, const std::string& path, const std::string& where);

// Applies `--set dotted.path=value` to the recipe table at `idx`. The value is converted by the
// field's declared type (Table/List/Any fields take a Lua literal). Throws RecipeError.
void apply_override(lua_State* L, int idx, const Schema& schema, const std::string& assignment);

// Markdown-ish reference of a schema, for `mathrl run --help`-style docs and the README.
std::string describe_schema(const Schema& schema, const std::string& path = "");

}  // namespace mathrl::lua
