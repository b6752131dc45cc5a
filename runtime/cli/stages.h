// The stages a recipe can build (mathrl.<stage>{...}), registered from each area.
#pragma once
#include <string>
#include <vector>

#include "schema.h"

namespace mathrl::cli {
// Idempotent: registers every built-in stage with the Lua host.
void register_builtin_stages();
}  // namespace mathrl::cli

