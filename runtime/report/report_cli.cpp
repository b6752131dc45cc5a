#include "report/report_cli.h"

#include <cstdio>

#include "cli/options.h"
#include "report/run_report.h"

namespace mathrl::report {

int run_report(const cli::Args& args) {
  ReportOptions options;
  options.title = args.str_or("title", "");
  std::string path = write_run_report(args.positional().at(0), options);
  std::printf("%s\n", path.c_str());
  return 0;
}

}  // namespace mathrl::report
