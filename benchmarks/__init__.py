"""ppassign's experiment harness, outside the library: the assigner and head benchmarks (operators, host copies,
time and memory side by side with PaddleDetection's), the same-budget training comparison, and its configs
(`benchmarks/configs/`). Run from a checkout through tools/ (bench_assign.py, bench_heads.py, compare.py)."""
