"""Measures the two ceilings METHOD.md asks for on the GPU machine: device-to-device copy bandwidth
(bytes read + written) and a large bf16 matrix product, both on random data, median of timed runs."""
import json, sys
import torch

def bench(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return times[len(times) // 2]

src = torch.randn(1 << 30, device="cuda", dtype=torch.float32)  # 4 GiB
dst = torch.empty_like(src)
t = bench(lambda: dst.copy_(src))
copy_bw = 2 * src.numel() * 4 / t
n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
t = bench(lambda: a @ b)
flops = 2 * n ** 3 / t
out = {"device": torch.cuda.get_device_name(), "copy_bytes_per_s": copy_bw, "bf16_matmul_flops": flops}
print(json.dumps(out))
if len(sys.argv) > 1:
    json.dump(out, open(sys.argv[1], "w"), indent=1)
