// `mathrl run RECIPE.lua`: load and validate the recipe, make the run directory, hand off to the stage.
#pragma once
#include "cli/options.h"

namespace mathrl::cli {
int run_recipe(const Args& args);
}
