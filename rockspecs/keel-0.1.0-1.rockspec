-- The keel Lua module (require "keel", docs/lua.md) as a rock. From the
-- root of the source tree:
--
--   luarocks --lua-version 5.4 make rockspecs/keel-0.1.0-1.rockspec
--
-- builds keel's library and keel.so with CMake (nothing else: no tests,
-- benchmarks, examples or command) and installs keel.so where lua5.4
-- finds it. It needs the Debian packages of keel's dependencies
-- (docs/install.md).
rockspec_format = "3.0"
package = "keel"
version = "0.1.0-1"
source = {
  -- luarocks make builds the tree it runs in; a rock published for
  -- luarocks install would name keel's repository and tag here
  url = "git+file://.",
}
description = {
  summary = "Portfolio strategy and rebalancing: estimators, optimiser, backtests, stress tests, advice",
  detailed = [[
keel is a C11 library for portfolio strategy and rebalancing; this rock is
its Lua 5.4 module: return and covariance estimators, mean-variance
optimisation with costs and constraints, backtests of accounts of
sub-accounts with exact costs, Monte Carlo stress tests and Lua strategies,
the same API the keel library runs in its sandbox.]],
  labels = { "finance", "portfolio", "optimization", "backtest" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    KEEL_BUILD_TESTS = "OFF",
    KEEL_BUILD_BENCH = "OFF",
    KEEL_BUILD_EXAMPLES = "OFF",
    KEEL_BUILD_CLI = "OFF",
  },
  -- only the module is installed, not the library, headers or command
  install_pass = false,
  install = {
    lib = { keel = "build.luarocks/bindings/lua/keel.so" },
  },
}
