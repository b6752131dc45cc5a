#include <gtest/gtest.h>

#include <atomic>

#include "common/error.h"
#include "sandbox.h"
#include "support/test_support.h"

using namespace mathrl;
using namespace mathrl::lua;

namespace {

// Defines `f` from `code` in the sandbox and calls it with no arguments.
CallResult call_code(Sandbox& sb, const std::string& code, int nresults = 1) {
  sb.run_chunk(code, "=test", 0);
  lua_getglobal(sb.L(), "f");
  return sb.call(0, nresults);
}

SandboxLimits small_limits() {
  SandboxLimits l;
  l.instruction_budget = 2'000'000;
  l.memory_cap = 8u << 20;
  return l;
}

}  // namespace

TEST(Sandbox, RunsOrdinaryCode) {
  Sandbox sb(small_limits());
  CallResult r = call_code(sb, "function f() local t = {} for i = 1, 10000 do t[i] = i * i end return t[10] end");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(lua_tointeger(sb.L(), -1), 100);
  lua_pop(sb.L(), 1);
  EXPECT_GT(sb.instructions_last_call(), 0u);
}

TEST(Sandbox, EndlessLoopStopsAtBudget) {
  Sandbox sb(small_limits());
  CallResult r = call_code(sb, "function f() while true do end end");
  EXPECT_EQ(r.status, CallStatus::Timeout);
  EXPECT_NE(r.error.find("instruction budget exceeded"), std::string::npos) << r.error;
  EXPECT_EQ(lua_gettop(sb.L()), 0);
}

TEST(Sandbox, PcallCannotSwallowTheBudget) {
  Sandbox sb(small_limits());
  // The script catches the first error and tries to keep looping and return normally.
  CallResult r = call_code(sb, R"(
    function f()
      local caught = 0
      for round = 1, 1000 do
        local ok = pcall(function() while true do end end)
        if not ok then caught = caught + 1 end
      end
      return caught
    end)");
  EXPECT_EQ(r.status, CallStatus::Timeout) << r.error;
  EXPECT_EQ(lua_gettop(sb.L()), 0);
  // xpcall with a looping handler, and coroutines, end the same way.
  r = call_code(sb, "function f() return xpcall(function() while true do end end, function() while true do end end) end");
  EXPECT_EQ(r.status, CallStatus::Timeout) << r.error;
  r = call_code(sb, "function f() setmetatable({}, {__gc = function() while true do end end}) end");
  EXPECT_EQ(r.status, CallStatus::Error);
  EXPECT_NE(r.error.find("__gc"), std::string::npos) << r.error;
  r = call_code(sb, "function f() local co = coroutine.wrap(function() while true do end end) return pcall(co) end");
  EXPECT_EQ(r.status, CallStatus::Timeout) << r.error;
}

TEST(Sandbox, HostSurvivesAndNextCallWorks) {
  Sandbox sb(small_limits());
  EXPECT_EQ(call_code(sb, "function f() while true do end end").status, CallStatus::Timeout);
  CallResult r = call_code(sb, "function f() return 41 + 1 end");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(lua_tointeger(sb.L(), -1), 42);
  lua_pop(sb.L(), 1);
}

TEST(Sandbox, UnboundedAllocationStopsAtCap) {
  Sandbox sb(small_limits());
  CallResult r = call_code(sb, "function f() local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep('x', 1000) .. i end end");
  EXPECT_EQ(r.status, CallStatus::OutOfMemory) << r.error;
  EXPECT_NE(r.error.find("memory cap"), std::string::npos);
  // One huge allocation in C (string.rep) is refused too, even under pcall.
  r = call_code(sb, "function f() local ok = pcall(string.rep, 'x', 1 << 30) return ok end");
  EXPECT_EQ(r.status, CallStatus::OutOfMemory) << r.error;
  // Memory is given back: an ordinary call works afterwards.
  r = call_code(sb, "function f() return #string.rep('y', 1000) end");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(lua_tointeger(sb.L(), -1), 1000);
  lua_pop(sb.L(), 1);
  EXPECT_LE(sb.memory_used(), sb.limits().memory_cap);
}

TEST(Sandbox, DangerousLibrariesAreUnreachable) {
  Sandbox sb(small_limits());
  for (const char* expr : {"os", "io", "package", "debug", "dofile", "loadfile", "string.dump"}) {
    std::string code = std::string("function f() return ") + expr + " end";
    CallResult r = call_code(sb, code);
    ASSERT_TRUE(r.ok()) << expr << ": " << r.error;
    EXPECT_TRUE(lua_isnil(sb.L(), -1)) << expr << " is reachable";
    lua_pop(sb.L(), 1);
  }
  CallResult r = call_code(sb, "function f() return os.execute('touch /tmp/mathrl-pwned') end");
  EXPECT_EQ(r.status, CallStatus::Error);
  EXPECT_NE(r.error.find("os"), std::string::npos) << r.error;
  r = call_code(sb, "function f() return io.open('/etc/passwd') end");
  EXPECT_EQ(r.status, CallStatus::Error);
  // Bytecode cannot be loaded, text can.
  r = call_code(sb, "function f() return load('\\27Lua garbage') end", 2);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(lua_isnil(sb.L(), -2));
  EXPECT_NE(std::string(lua_tostring(sb.L(), -1)).find("binary"), std::string::npos);
  lua_pop(sb.L(), 2);
  r = call_code(sb, "function f() return load('return 7')() end");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(lua_tointeger(sb.L(), -1), 7);
  lua_pop(sb.L(), 1);
}

TEST(Sandbox, RequireOnlyFromAllowedDirectories) {
  test::TempDir dir;
  {
    FILE* f = std::fopen(dir.file("helper.lua").c_str(), "w");
    std::fputs("return { twice = function(x) return 2 * x end }", f);
    std::fclose(f);
  }
  Sandbox sb(small_limits(), {dir.path()});
  CallResult r = call_code(sb, "function f() return require('helper').twice(21) end");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(lua_tointeger(sb.L(), -1), 42);
  lua_pop(sb.L(), 1);
  r = call_code(sb, "function f() return require('../../etc/passwd') end");
  EXPECT_EQ(r.status, CallStatus::Error);
  EXPECT_NE(r.error.find("invalid module name"), std::string::npos) << r.error;
  r = call_code(sb, "function f() return require('missing_module') end");
  EXPECT_EQ(r.status, CallStatus::Error);
  EXPECT_NE(r.error.find("not found"), std::string::npos) << r.error;
}

TEST(Sandbox, RandomIsSeededByTheRuntime) {
  auto draw = [](uint64_t seed) {
    SandboxLimits l = small_limits();
    l.seed = seed;
    Sandbox sb(l);
    CallResult r = call_code(sb, "function f() return math.random(1, 1000000) end");
    EXPECT_TRUE(r.ok());
    long long v = lua_tointeger(sb.L(), -1);
    lua_pop(sb.L(), 1);
    return v;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sandbox, ErrorsCarryChunkLineAndTraceback) {
  Sandbox sb(small_limits());
  sb.run_chunk("local function g()\n  error('boom')\nend\nfunction f() g() end", "@rewards/x.lua", 0);
  lua_getglobal(sb.L(), "f");
  CallResult r = sb.call(0, 0);
  EXPECT_EQ(r.status, CallStatus::Error);
  EXPECT_NE(r.error.find("rewards/x.lua:2: boom"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("stack traceback"), std::string::npos) << r.error;
  EXPECT_THROW(sb.run_chunk("function (", "@rewards/bad.lua", 0), RecipeError);
}

TEST(SandboxPool, RunsOnSeveralThreads) {
  SandboxPool pool(4, small_limits(), [](Sandbox& sb) {
    sb.run_chunk("function square(x) local s = 0 for i = 1, x do s = s + x end return s end", "=setup", 0);
  });
  std::vector<long long> out(200);
  pool.parallel_for(out.size(), [&](Sandbox& sb, size_t i) {
    lua_getglobal(sb.L(), "square");
    lua_pushinteger(sb.L(), static_cast<lua_Integer>(i));
    CallResult r = sb.call(1, 1);
    ASSERT_TRUE(r.ok()) << r.error;
    out[i] = lua_tointeger(sb.L(), -1);
    lua_pop(sb.L(), 1);
  });
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], static_cast<long long>(i * i));
}

TEST(SandboxPool, RebuildKeepsOldStatesWhenSetupFails) {
  SandboxPool pool(2, small_limits(), [](Sandbox& sb) { sb.run_chunk("function v() return 1 end", "=v1", 0); });
  EXPECT_THROW(pool.rebuild([](Sandbox& sb) { sb.run_chunk("function v( return 2 end", "=v2", 0); }), RecipeError);
  {
    auto lease = pool.acquire();
    lua_getglobal(lease->L(), "v");
    ASSERT_TRUE(lease->call(0, 1).ok());
    EXPECT_EQ(lua_tointeger(lease->L(), -1), 1);
    lua_pop(lease->L(), 1);
  }
  pool.rebuild([](Sandbox& sb) { sb.run_chunk("function v() return 2 end", "=v2", 0); });
  auto lease = pool.acquire();
  lua_getglobal(lease->L(), "v");
  ASSERT_TRUE(lease->call(0, 1).ok());
  EXPECT_EQ(lua_tointeger(lease->L(), -1), 2);
  lua_pop(lease->L(), 1);
}
