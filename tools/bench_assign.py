"""Benchmark ppassign's assigners against PaddleDetection's on the same inputs, in one run.

    python tools/bench_assign.py                                # every case group, both assigners
    python tools/bench_assign.py --groups few --assigners tal   # B = 1, 8, 32 with 2 and 8 objects per image
    python tools/bench_assign.py --groups dense --num_gts 10 100 --output_dir output/bench

Case groups: dense (B=8, n = --num_gts, predictions around the anchors), early (B=8, n = 100 and 300,
early-training predictions: most metrics are 0), few (B = --batches, n = 2 and 8), ties (as few, objects on a
16 px lattice with early predictions: top-k ties), crowd (B = --crowd_batches, n = --crowd_gts, objects of
4-60 px; ppdet's side is skipped, with the memory it would need, where it cannot fit). Prints a Markdown table
(median s/call, Paddle operators and device-to-host copies per call, peak memory growth, ratios, whether
outputs match) and writes it with a PNG plot (log scale) to --output_dir. Each case runs in a fresh
subprocess; the GPU is used when present (timed with device synchronisation).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import assign_bench as benchmark  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", choices=benchmark.CASE_GROUPS, default=list(benchmark.CASE_GROUPS))
    parser.add_argument("--num_gts", type=int, nargs="+", default=list(benchmark.NUM_GTS),
                        help="objects per image of the dense group")
    parser.add_argument("--batches", type=int, nargs="+", default=list(benchmark.BATCHES),
                        help="batch sizes of the few-objects group")
    parser.add_argument("--crowd_gts", type=int, nargs="+", default=list(benchmark.CROWD_GTS),
                        help="objects per image of the crowd group")
    parser.add_argument("--crowd_batches", type=int, nargs="+", default=list(benchmark.CROWD_BATCHES),
                        help="batch sizes of the crowd group")
    parser.add_argument("--assigners", nargs="+", choices=benchmark.ASSIGNERS, default=list(benchmark.ASSIGNERS))
    parser.add_argument("--repeats", type=int, default=3, help="calls timed per case (median reported)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per case")
    parser.add_argument("--output_dir", default="output/bench_assign")
    args = parser.parse_args()
    if args.repeats < 1 or min(args.num_gts + args.crowd_gts) < 0 or min(args.batches + args.crowd_batches) < 1:
        parser.error("--repeats, --batches and --crowd_batches must be >= 1, --num_gts and --crowd_gts >= 0")
    cases = benchmark.cases(args.groups, args.num_gts, args.batches, args.crowd_gts, args.crowd_batches)
    rows = benchmark.run(cases, args.assigners, args.repeats, args.timeout,
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
