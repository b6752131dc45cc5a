// `mathrl launch --nproc-per-node N -- run R.lua`: starts N copies of this binary with torchrun's
// environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and
// supervises them: when one rank fails, the others are stopped and the job ends naming that rank.
#pragma once

namespace mathrl::cli {
class Args;
int run_launch(const Args& args);
}  // namespace mathrl::cli
