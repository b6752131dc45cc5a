#include "cli/options.h"
#include "common/host_memory.h"

int main(int argc, char** argv) {
  mathrl::tune_host_allocator();
  return mathrl::cli::main_dispatch(argc, argv);
}
