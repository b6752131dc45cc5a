// The stages a recipe can build (mathrl.<stage>{...}), registered from each area.
#pragma once
#include <string>
#include <vector>

#include "schema.h"

namespace mathrl::cli {
// Idempotent: registers every built-in stage with the Lua host.
void register_builtin_stages();
}  // namespace mathrl::cli

namespace mathrl::lua {
// Fields every stage has: name, seed, device. Stage schemas start with these.
std::vector<Field> common_stage_fields();
}  // namespace mathrl::lua
