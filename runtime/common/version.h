#pragma once
#include <string>

namespace mathrl {
// "mathrl 0.1.0"; `mathrl version` adds the LibTorch version and CUDA state.
std::string version_string();
}
