#pragma once
#include "cli/options.h"

namespace mathrl::cli {
int run_version(const Args& args);
}
