"""Operators, host round-trips and CPU time per training step of the AutoAssign and DW heads against B.

    python tools/bench_heads.py                                   # B = 2 8 16, all three heads
    git worktree add /tmp/heads_before 97ffe90                    # an older checkout to compare with
    python tools/bench_heads.py --before /tmp/heads_before         # "before -> after" in one table
    python tools/bench_heads.py --retinanet                       # ppdet's RetinaHead and PPAssignRetinaHead
                                                                  # with each RetinaNet assigner

Counts one head forward + loss + backward on random FPN features (see benchmarks/head_bench.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import head_bench as bench_heads  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=list(bench_heads.BATCHES))
    parser.add_argument("--heads", nargs="+", choices=list(bench_heads.HEADS), default=None,
                        help=f"default: {', '.join(bench_heads.DEFAULT_HEADS)}")
    parser.add_argument("--retinanet", action="store_true", help="the RetinaNet rows: " +
                        ", ".join(bench_heads.RETINA_HEADS))
    parser.add_argument("--repeats", type=int, default=3, help="steps timed per row (median reported)")
    parser.add_argument("--before", metavar="DIR", help="another checkout to measure side by side")
    args = parser.parse_args()
    if args.heads and args.retinanet:
        parser.error("give --heads or --retinanet, not both")
    args.heads = list(bench_heads.RETINA_HEADS if args.retinanet else args.heads or bench_heads.DEFAULT_HEADS)
    if args.repeats < 1 or min(args.batches) < 1:
        parser.error("--repeats and --batches must be >= 1")
    if args.before and not os.path.isdir(os.path.join(args.before, "ppassign")):
        parser.error(f"--before {args.before}: no ppassign package there")
    if args.before:
        before, after = bench_heads.compare(args.before, args.heads, args.batches, args.repeats,
                                            log=lambda line: print(line, file=sys.stderr))
    else:
        before, after = None, bench_heads.run(args.heads, args.batches, args.repeats)
    print(bench_heads.markdown_table(after, before))
    for name, ratio in bench_heads.growth(after).items():
        line = f"{name}: operators at B={max(args.batches)} / B={min(args.batches)} = {ratio:.2f}"
        if before:
            line += f" (before: {bench_heads.growth(before)[name]:.2f})"
        print(line)


if __name__ == "__main__":
    main()
