// Host allocator settings for tensor workloads, applied once at process start.
#pragma once

namespace mathrl {

// glibc serves allocations above a (dynamic) threshold with fresh mmap pages and gives freed heap
// tops back to the kernel, so a loop that allocates and frees tensors of a few MB (a CPU decode
// step's attention gathers, training activations) page-faults on every iteration: measured here,
// CPU generation ran 1.7x faster with both off. Raises the mmap threshold to glibc's maximum and
// keeps freed memory for reuse (the process holds its peak). MATHRL_KEEP_MALLOC=1 skips this.
void tune_host_allocator();

}  // namespace mathrl
