// Test helper for the kill-during-write test: writes checkpoints of a small model into DIR.
//   ckpt_writer DIR pause   step-1 complete, then starts step-2, prints "writing" and sleeps
//   ckpt_writer DIR loop    writes step-1, step-2, ... printing "saved N" after each
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <torch/torch.h>

#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train_test_util.h"

using namespace mathrl;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const std::string dir = argv[1], mode = argv[2];
  model::ModelConfig c = train::test::tiny_config(mode == "loop" ? 2048 : 48);
  if (mode == "loop") c.hidden_size = 128, c.intermediate_size = 384, c.num_hidden_layers = 4;
  model::Decoder m = model::random_decoder(c, 1);
  train::AdamW opt = train::AdamW::for_module(*m, {});
  train::CheckpointManager ckpts(dir, {1000, ""});
  train::TrainState st;
  st.data_state = "{\"cursor\":1}";
  for (int64_t step = 1;; ++step) {
    st.step = step;
    st.counters["step_again"] = static_cast<uint64_t>(step);
    {
      at::NoGradGuard g;
      for (auto& p : m->parameters()) p.add_(1.0);  // each checkpoint's weights differ
    }
    train::ExtraWriter extra;
    if (mode == "pause" && step == 2)
      extra = [](const std::string&) {
        std::printf("writing\n");
        std::fflush(stdout);
        ::sleep(60);
      };
    ckpts.save(m, &opt, st, extra);
    std::printf("saved %lld\n", static_cast<long long>(step));
    std::fflush(stdout);
  }
}
