#include "train/step_profiler.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"

namespace mathrl::train {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(StepProfiler, KernelGroupsFollowTheNames) {
  EXPECT_EQ(kernel_group("nvjet_hsh_256x128_64x4_2x1_v_bz_coopA_TNT"), "matmul");
  EXPECT_EQ(kernel_group("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"), "matmul");
  EXPECT_EQ(kernel_group("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128>>"), "attention");
  EXPECT_EQ(kernel_group("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>"),
            "optimizer");
  EXPECT_EQ(kernel_group("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>"),
            "elementwise");
  EXPECT_EQ(kernel_group("void at::native::reduce_kernel<512, 1, ReduceOp<float, MeanOps<float>>>"), "reduction");
  EXPECT_EQ(kernel_group("Memcpy HtoD (Pageable -> Device)"), "copy/memset");
  EXPECT_EQ(kernel_group("mathrl::token_logprobs_forward"), "loss/softmax");
  EXPECT_EQ(kernel_group("something_new"), "other");
}

TEST(StepProfiler, FromEnvParsesAndRejects) {
  ::unsetenv("MATHRL_PROFILE");
  EXPECT_EQ(StepProfiler::from_env(), nullptr);
  ::setenv("MATHRL_PROFILE", "/tmp/p:3:2", 1);
  auto p = StepProfiler::from_env();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->dir(), "/tmp/p");
  ::setenv("MATHRL_PROFILE", "/tmp/p:x", 1);
  EXPECT_THROW(StepProfiler::from_env(), Error);
  ::setenv("MATHRL_PROFILE", "/tmp/p:0:2", 1);
  EXPECT_THROW(StepProfiler::from_env(), Error);
  ::unsetenv("MATHRL_PROFILE");
}

// The window opens at `first`, closes after `count` steps and writes the trace and the table;
// steps outside it are not profiled (the trace holds only the window's ops).
TEST(StepProfiler, WritesTraceAndTableForTheWindow) {
  const std::string dir = ::testing::TempDir() + "/step_profiler";
  std::filesystem::remove_all(dir);
  StepProfiler p(dir, 2, 2);
  at::Tensor a = at::randn({64, 64});
  for (int64_t step = 1; step <= 4; ++step) {
    p.before_step(step);
    at::Tensor b = at::matmul(a, a);
    if (step == 2) b = b.relu();  // an op that appears only inside the window
    if (step == 4) b = b.tanh();  // and one only after it
    p.after_step(step);
    EXPECT_EQ(std::filesystem::exists(dir + "/kernels.md"), step >= 3) << "step " << step;
  }
  const std::string trace = read(dir + "/trace.json");
  EXPECT_NE(trace.find("aten::matmul"), std::string::npos);
  EXPECT_NE(trace.find("aten::relu"), std::string::npos);
  EXPECT_EQ(trace.find("aten::tanh"), std::string::npos);
  EXPECT_NE(read(dir + "/kernels.md").find("Profile of 2 steps from step 2"), std::string::npos);
}

}  // namespace
}  // namespace mathrl::train
