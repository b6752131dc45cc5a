// The base and instruct stages: `mathrl.base{...}` (continued pretraining on a packed token mix) and
// `mathrl.instruct{...}` (SFT: prompt/response documents, loss on responses). One schema, different
// defaults; both run train::Trainer and write the final model in Hugging Face layout to <run>/model.
#pragma once
#include "recipe.h"

namespace mathrl::lua {
StageSpec base_stage();
StageSpec instruct_stage();
const Schema& base_schema();
const Schema& instruct_schema();
}  // namespace mathrl::lua
