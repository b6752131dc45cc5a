// mathrl.report: run reports from recipes. write(run_dir [, {title = ...}]) -> path of report.md.
#pragma once
#include <lua.hpp>

namespace mathrl::lua {
int open_report_module(lua_State* L);
}  // namespace mathrl::lua
