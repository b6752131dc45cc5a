// mathrl.rl: the built-in advantage estimators for recipes, so a Lua `advantage = function(group)`
// can wrap them.
//   mathrl.rl.grpo(rewards [, {scale = true, epsilon = 1e-4}]) -> advantages
//   mathrl.rl.rloo(rewards) -> advantages
//   mathrl.rl.reinforce_pp(groups [, {epsilon = 1e-4}]) -> one advantage list per group
//   mathrl.rl.process(step_rewards, step_ends, lengths [, {epsilon = 1e-4}]) -> per-token advantages
//   mathrl.rl.gae(rewards, values [, {gamma = 1, lambda = 0.95}]) -> advantages, returns
//   mathrl.rl.names() -> {"grpo", "rloo", "reinforce++", "process"}
#pragma once
#include <string>
#include <vector>

#include <lua.hpp>

namespace mathrl::lua {

int open_rl_module(lua_State* L);

// Helpers shared with the stage: a Lua list of numbers (or of lists of numbers) at `arg`.
std::vector<double> number_list(lua_State* L, int arg, const char* fname);
std::vector<std::vector<double>> number_lists(lua_State* L, int arg, const char* fname);
void push_numbers(lua_State* L, const std::vector<double>& v);

}  // namespace mathrl::lua
