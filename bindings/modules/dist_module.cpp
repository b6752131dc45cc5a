// mathrl.dist.rank(), .world_size(), .local_rank(), .backend(), .barrier(),
// mathrl.dist.all_reduce(numbers [, "sum"|"max"]) -> a table of the reduced numbers (float64).
#include "modules/dist_module.h"

#include <mutex>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/process_group.h"
#include "lua_host.h"

namespace mathrl::lua {

std::shared_ptr<dist::ProcessGroup> job_process_group() {
  static std::mutex mutex;
  static std::shared_ptr<dist::ProcessGroup> pg;
  std::lock_guard<std::mutex> lock(mutex);
  if (!pg) {
    const char* backend = std::getenv("MATHRL_DIST_BACKEND");
    pg = dist::ProcessGroup::create(dist::rendezvous_from_env(), dist::parse_backend(backend ? backend : "auto"));
  }
  return pg;
}

namespace {

int rank(lua_State* L) {
  lua_pushinteger(L, job_process_group()->rank());
  return 1;
}

int world_size(lua_State* L) {
  lua_pushinteger(L, job_process_group()->world_size());
  return 1;
}

int local_rank(lua_State* L) {
  lua_pushinteger(L, job_process_group()->local_rank());
  return 1;
}

int backend(lua_State* L) {
  lua_pushstring(L, job_process_group()->backend_name().c_str());
  return 1;
}

int barrier(lua_State* L) {
  (void)L;
  job_process_group()->barrier();
  return 0;
}

int all_reduce(lua_State* L) {
  arg_table(L, 1, "mathrl.dist.all_reduce");
  std::string op = opt_string(L, 2, "mathrl.dist.all_reduce", "sum");
  if (op != "sum" && op != "max") arg_error(L, 2, "mathrl.dist.all_reduce", "expected \"sum\" or \"max\"");
  lua_Integer n = luaL_len(L, 1);
  std::vector<double> values(static_cast<size_t>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TNUMBER) arg_error(L, 1, "mathrl.dist.all_reduce", str("element ", i, " is not a number"));
    values[static_cast<size_t>(i - 1)] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  auto pg = job_process_group();
  at::Tensor t = torch::tensor(values, torch::kDouble);
  if (pg->backend_name() == "nccl") t = t.to(at::Device(at::kCUDA, pg->local_rank()));
  if (op == "sum") pg->all_reduce_sum(t);
  else pg->all_reduce_max(t);
  t = t.cpu();
  lua_createtable(L, static_cast<int>(n), 0);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_pushnumber(L, t[i - 1].item<double>());
    lua_rawseti(L, -2, i);
  }
  return 1;
}

const luaL_Reg functions[] = {
    {"rank", trampoline<rank>},         {"world_size", trampoline<world_size>}, {"local_rank", trampoline<local_rank>},
    {"backend", trampoline<backend>},   {"barrier", trampoline<barrier>},       {"all_reduce", trampoline<all_reduce>},
    {nullptr, nullptr},
};

}  // namespace

int open_dist_module(lua_State* L) {
  luaL_newlib(L, functions);
  return 1;
}

}  // namespace mathrl::lua
