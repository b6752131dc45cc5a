// Error types shared by every area. Internals throw; the Lua trampoline and the CLI turn them into
// Lua errors or exit codes. Which class is thrown decides the exit code (see cli/main.cpp).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mathrl {

// Anything wrong at run time that is not the user's input (I/O failure, internal invariant).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The user asked for something invalid: bad option, bad recipe field, bad argument. Exit status 2.
struct UsageError : Error {
  using Error::Error;
};
// A recipe failed to load or validate (syntax, runtime error, wrong field). Exit status 2.
struct RecipeError : UsageError {
  using UsageError::UsageError;
};
// An input file is malformed (truncated checkpoint, bad shard, invalid JSON). Exit status 1.
struct DataError : Error {
  using Error::Error;
};

// Concatenates anything streamable: str("layer ", i, " has ", n, " heads").
template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

namespace detail {
[[noreturn]] void throw_check_failure(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

}  // namespace mathrl

// Invariant checks carry file:line, as llm.c's do. Use for conditions that indicate a bug or a
// broken input; user-facing validation should throw UsageError/DataError with a readable message.
#define MATHRL_CHECK(cond, ...)                                                            \
  do {                                                                                     \
    if (!(cond)) ::mathrl::detail::throw_check_failure(__FILE__, __LINE__, #cond,          \
                                                       ::mathrl::str("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
