#include "cli/options.h"

int main(int argc, char** argv) { return mathrl::cli::main_dispatch(argc, argv); }
