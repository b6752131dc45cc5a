// Declarative command-line options. Every subcommand is one `Command` entry in commands.cpp's table:
// its options are data, parsing/--help/"did you mean" are shared. A subcommand's implementation is a
// plain function `int run_x(const cli::Args&)` that lives with its area (reward/, model/, ...).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mathrl::cli {

enum class Kind {
  Flag,    // --name            (bool)
  String,  // --name VALUE | --name=VALUE
  Int,     // integer, checked at parse time
  Float,   // real number, checked at parse time
  List,    // repeatable string option: --set a=1 --set b=2
};

struct Option {
  std::string name;           // without the leading "--"
  Kind kind = Kind::Flag;
  std::string default_value;  // "" = no default (Args::has() is false unless given)
  std::string help;
  std::string metavar = "";   // shown in --help, e.g. "PATH"
};

class Args;
using Runner = int (*)(const Args&);

struct Command {
  std::string name;       // "grade"
  std::string summary;    // one line for `mathrl --help`
  std::string usage;      // positional part, e.g. "RECIPE.lua" or "[FILE]"
  std::string details;    // extra paragraph for `mathrl NAME --help`
  int min_positional = 0;
  int max_positional = 0;  // -1 = unbounded
  std::vector<Option> options;
  Runner run = nullptr;
};

class Args {
 public:
  bool has(const std::string& name) const;  // given on the command line, or has a default
  bool flag(const std::string& name) const;
  const std::string& str(const std::string& name) const;  // throws UsageError if absent
  std::string str_or(const std::string& name, const std::string& fallback) const;
  long long integer(const std::string& name) const;
  double real(const std::string& name) const;
  const std::vector<std::string>& list(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& command() const { return command_; }

 private:
  friend Args parse(const Command&, const std::vector<std::string>&);
  const Option& spec(const std::string& name) const;
  std::string command_;
  const Command* cmd_ = nullptr;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Parses argv after the subcommand name. Throws UsageError naming the closest valid option for an
// unknown one, a missing value, or a value of the wrong type. "--" ends options.
Args parse(const Command& cmd, const std::vector<std::string>& argv);

// `mathrl NAME --help` text, generated from the table.
std::string help_text(const Command& cmd);

// The table (commands.cpp) and the top-level dispatcher.
const std::vector<Command>& commands();
int main_dispatch(int argc, char** argv);

}  // namespace mathrl::cli
