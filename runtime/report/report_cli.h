// `mathrl report RUN_DIR`: writes RUN_DIR/report.md and RUN_DIR/plots/*.svg.
#pragma once

namespace mathrl::cli {
class Args;
}

namespace mathrl::report {
int run_report(const cli::Args& args);
}  // namespace mathrl::report
