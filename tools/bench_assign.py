"""Benchmark ppassign's assigners against PaddleDetection's on the same inputs, in one run.

    python tools/bench_assign.py                      # n = 10 100 300 1000 2000, both assigners
    python tools/bench_assign.py --num_gts 10 100 --assigners tal --output_dir output/bench

Prints a Markdown table (median s/call, peak memory growth, ratios, whether outputs match) and writes it with
a PNG plot (log scale) to --output_dir. Each case runs in a fresh subprocess; GPU is used when present.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ppassign.analysis import benchmark  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_gts", type=int, nargs="+", default=list(benchmark.NUM_GTS))
    parser.add_argument("--assigners", nargs="+", choices=benchmark.ASSIGNERS, default=list(benchmark.ASSIGNERS))
    parser.add_argument("--repeats", type=int, default=3, help="calls timed per case (median reported)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per case")
    parser.add_argument("--output_dir", default="output/bench_assign")
    args = parser.parse_args()
    if args.repeats < 1 or min(args.num_gts) < 0:
        parser.error("--repeats must be >= 1 and --num_gts >= 0")
    rows = benchmark.run(args.num_gts, args.assigners, args.repeats, args.timeout,
                         log=lambda line: print(line, file=sys.stderr))
    table = benchmark.markdown_table(rows)
    print(table)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "bench_assign.md"), "w") as f:
        f.write(table + "\n")
    benchmark.plot(rows, os.path.join(args.output_dir, "bench_assign.png"))
    print(f"\nwrote {args.output_dir}/bench_assign.md and bench_assign.png")


if __name__ == "__main__":
    main()
