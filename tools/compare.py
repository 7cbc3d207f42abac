"""Train label-assignment methods with the same backbone, neck, budget and seed, and compare them.

    python tools/compare.py --output_dir output/compare [--methods fcos,atss_only,...] [--epochs 8]
        [--train_images 192] [--val_images 48] [--image_size 160] [--seed 0 | --seeds 0,1] [-o key=value ...]

--methods takes method names and the groups all (the six FCOS-style/PP-YOLOE methods), retinanet (RetinaNet
with each RetinaNet assigner, one anchor per location) and retinanet9 (nine anchors).
Writes <output_dir>/results.md (COCO AP, AP50, AP75, APs/m/l, s/iter), results.json and curves.png; with
--seeds, one such folder per seed (<output_dir>/seed<k>) and, in <output_dir>, the table over seeds.
Variants (one change to a method: optimizer, levels, head switches, ablations) are methods too, with the groups
setup, align, autoassign_ablation and dw_ablation. `--tabulate DIR ...` prints one table over earlier runs
(with `--plot PNG` it also draws their AP curves), `--sweep 1x=DIR,... 3x=DIR,...` one table over several
budgets. `--resume` (same arguments as the interrupted call) goes on from each method's latest checkpoint (every
--eval_interval epochs) and skips finished methods.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import compare  # noqa: E402


def parse_args(argv=None):
    budget = compare.default_budget()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="output/compare", help="where results and runs go")
    parser.add_argument("--methods", default="all", help=f"comma-separated, from: {', '.join(compare.METHODS)}")
    for key, value in budget.items():
        parser.add_argument(f"--{key}", type=int, default=value, help=f"budget (default {value})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every training run")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds: run every method once per seed")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--dataset_dir", default=None, help="synthetic dataset folder (default <output_dir>/dataset)")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="extra key=value overrides for every method")
    parser.add_argument("--stop_stalled", type=int, default=0, metavar="ITER",
                        help="stop a run whose box-regression loss has not fallen after ITER iterations (0: never)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with an earlier call's runs in --output_dir (same arguments) from their latest "
                             "checkpoints; finished methods are read, not trained again")
    parser.add_argument("--tabulate", nargs="+", metavar="DIR", default=None,
                        help="train nothing: print the seeds table of earlier runs' output dirs (one budget) and "
                             "one line per run (APs by size, AP after each evaluation)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="with --tabulate: also draw those runs' AP after each evaluation, every method and "
                             "seed, into this PNG")
    parser.add_argument("--sweep", nargs="+", metavar="LABEL=DIR[,DIR]", default=None,
                        help="train nothing: print one table over several budgets, e.g. 1x=output/b1 "
                             "3x=output/b3a,output/b3b (each label: earlier runs' dirs of one budget)")
    return parser.parse_args(argv), list(budget)


def main(argv=None):
    args, budget_keys = parse_args(argv)
    budget = {k: getattr(args, k) for k in budget_keys}
    try:
        if args.plot and not args.tabulate:
            raise ValueError(f"--plot {args.plot} draws the runs of --tabulate DIR ...; give --tabulate too")
        if args.sweep:
            budgets = [(label, compare.collect_results(dirs)[0]) for label, dirs in compare.parse_sweep(args.sweep)]
            print(compare.sweep_table(budgets), end="")
        elif args.tabulate:
            results, _ = compare.collect_results(args.tabulate)
            curves = compare.collect_curves(args.tabulate)
            print(compare.seeds_table(results))
            print(compare.runs_table(results, curves), end="")
            if args.plot:
                compare.plot_seed_curves(curves, compare.method_labels(results), args.plot)
        elif args.seeds:
            try:
                seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            except ValueError:
                raise ValueError(f"--seeds must be comma-separated ints, got {args.seeds!r}") from None
            compare.run_seeds(args.output_dir, args.methods, budget, seeds, args.threads, args.dataset_dir,
                              overrides=args.opt, stop_stalled=args.stop_stalled, resume=args.resume)
        else:
            compare.run_comparison(args.output_dir, args.methods, budget, args.seed, args.threads,
                                   args.dataset_dir, overrides=args.opt, stop_stalled=args.stop_stalled,
                                   resume=args.resume)
    except (ValueError, compare.CompareError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
