// The `script` stage: `mathrl.script{ main = function(run) ... end }` runs a Lua function with the
// runtime's modules (tokenizers, models, grader) in reach. For experiments that need no packaged
// stage, and for inspecting models and tokenizers from a recipe.
#pragma once
#include "recipe.h"

namespace mathrl::lua {
StageSpec script_stage();
}
