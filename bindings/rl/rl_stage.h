// The `rl` stage: mathrl.rl{...} runs GRPO (or PPO with a learned critic) on prompts from JSONL,
// with sandboxed Lua rewards, built-in or Lua advantages, a frozen reference model, checkpoints
// and --resume. See rl_stage.cpp for the fields (TRL's names where the concept is the same).
#pragma once
#include "recipe.h"

namespace mathrl::lua {
StageSpec rl_stage();
const Schema& rl_schema();
}  // namespace mathrl::lua
