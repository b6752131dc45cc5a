#include "common/version.h"

#ifndef MATHRL_VERSION
#define MATHRL_VERSION "unknown"
#endif

namespace mathrl {
std::string version_string() { return "mathrl " MATHRL_VERSION; }
}
