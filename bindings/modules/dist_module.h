// mathrl.dist: the job's process group from recipes (rank, world size, all-reduce of numbers).
#pragma once
#include <memory>

#include <lua.hpp>

namespace mathrl::dist {
class ProcessGroup;
}

namespace mathrl::lua {
int open_dist_module(lua_State* L);
// The process-wide group, joined on first use from the environment (env:// or SLURM).
std::shared_ptr<dist::ProcessGroup> job_process_group();
}  // namespace mathrl::lua
