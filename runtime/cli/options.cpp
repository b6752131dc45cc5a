#include "cli/options.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "common/error.h"
#include "common/strings.h"

namespace mathrl::cli {

namespace {

const Option* find_option(const Command& cmd, const std::string& name) {
  for (const auto& o : cmd.options)
    if (o.name == name) return &o;
  return nullptr;
}

std::vector<std::string> option_names(const Command& cmd) {
  std::vector<std::string> names{"--help"};
  for (const auto& o : cmd.options) names.push_back("--" + o.name);
  return names;
}

[[noreturn]] void usage_error(const Command& cmd, const std::string& msg) {
  throw UsageError(str("mathrl ", cmd.name, ": ", msg, "\n(see 'mathrl ", cmd.name, " --help')"));
}

long long parse_integer(const Command& cmd, const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    usage_error(cmd, str("option --", name, " expects an integer, got '", text, "'"));
  return v;
}

double parse_real(const Command& cmd, const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    usage_error(cmd, str("option --", name, " expects a number, got '", text, "'"));
  return v;
}

}  // namespace

const Option& Args::spec(const std::string& name) const {
  const Option* o = find_option(*cmd_, name);
  MATHRL_CHECK(o != nullptr, "option --", name, " is not declared for '", cmd_->name, "'");
  return *o;
}

bool Args::has(const std::string& name) const {
  return values_.count(name) > 0 || !spec(name).default_value.empty();
}

bool Args::flag(const std::string& name) const {
  MATHRL_CHECK(spec(name).kind == Kind::Flag, "--", name, " is not a flag");
  return values_.count(name) > 0;
}

const std::string& Args::str(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  const Option& o = spec(name);
  if (o.default_value.empty()) throw UsageError(mathrl::str("mathrl ", command_, ": option --", name, " is required"));
  return o.default_value;
}

std::string Args::str_or(const std::string& name, const std::string& fallback) const {
  return has(name) ? str(name) : fallback;
}

long long Args::integer(const std::string& name) const { return parse_integer(*cmd_, name, str(name)); }

double Args::real(const std::string& name) const { return parse_real(*cmd_, name, str(name)); }

const std::vector<std::string>& Args::list(const std::string& name) const {
  static const std::vector<std::string> empty;
  MATHRL_CHECK(spec(name).kind == Kind::List, "--", name, " is not a list option");
  auto it = values_.find(name);
  return it == values_.end() ? empty : it->second;
}

Args parse(const Command& cmd, const std::vector<std::string>& argv) {
  Args args;
  args.command_ = cmd.name;
  args.cmd_ = &cmd;
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-' || a == "-") {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a[1] != '-') usage_error(cmd, str("unknown option '", a, "': options are written --name"));
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const Option* o = find_option(cmd, name);
    if (!o) usage_error(cmd, str("unknown option '--", name, "'", did_you_mean("--" + name, option_names(cmd))));
    if (o->kind == Kind::Flag) {
      if (inline_value) usage_error(cmd, str("option --", name, " takes no value"));
      args.values_[name].push_back("1");
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) usage_error(cmd, str("option --", name, " needs a value"));
      value = argv[++i];
    }
    if (o->kind == Kind::Int) parse_integer(cmd, name, value);
    if (o->kind == Kind::Float) parse_real(cmd, name, value);
    auto& slot = args.values_[name];
    if (o->kind != Kind::List) slot.clear();
    slot.push_back(value);
  }
  int n = static_cast<int>(args.positional_.size());
  if (n < cmd.min_positional)
    usage_error(cmd, str("missing argument: usage: mathrl ", cmd.name, " ", cmd.usage));
  if (cmd.max_positional >= 0 && n > cmd.max_positional)
    usage_error(cmd, str("unexpected argument '", args.positional_[cmd.max_positional], "': usage: mathrl ",
                         cmd.name, " ", cmd.usage));
  return args;
}

std::string help_text(const Command& cmd) {
  std::ostringstream out;
  out << "usage: mathrl " << cmd.name << " [options]" << (cmd.usage.empty() ? "" : " ") << cmd.usage << "\n\n"
      << cmd.summary << "\n";
  if (!cmd.details.empty()) out << "\n" << cmd.details << "\n";
  out << "\noptions:\n";
  auto line = [&](const std::string& left, const std::string& help) {
    out << "  " << left;
    if (left.size() < 26) out << std::string(26 - left.size(), ' ');
    else out << "\n  " << std::string(26, ' ');
    out << help << "\n";
  };
  for (const auto& o : cmd.options) {
    std::string left = "--" + o.name;
    if (o.kind != Kind::Flag) left += " " + (o.metavar.empty() ? std::string("VALUE") : o.metavar);
    std::string help = o.help;
    if (!o.default_value.empty() && o.kind != Kind::Flag) help += " (default: " + o.default_value + ")";
    if (o.kind == Kind::List) help += " (repeatable)";
    line(left, help);
  }
  line("--help", "show this help and exit");
  return out.str();
}

}  // namespace mathrl::cli
