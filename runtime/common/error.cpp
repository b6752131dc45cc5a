#include "common/error.h"

namespace mathrl::detail {

void throw_check_failure(const char* file, int line, const char* cond, const std::string& msg) {
  std::string where = str(file, ":", line, ": check failed: ", cond);
  throw Error(msg.empty() ? where : str(where, ": ", msg));
}

}  // namespace mathrl::detail
