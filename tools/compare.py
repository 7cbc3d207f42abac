"""Train label-assignment methods with the same backbone, neck, budget and seed, and compare them.

    python tools/compare.py --output_dir output/compare [--methods fcos,atss_only,...] [--epochs 8]
        [--train_images 192] [--val_images 48] [--image_size 160] [--seed 0 | --seeds 0,1] [-o key=value ...]
        [--record docs/results/EXPERIMENT.jsonl]
    python tools/compare.py --tabulate DIR_OR_JSONL [...] [--plot curves.png] [--record EXPERIMENT.jsonl]
    python tools/compare.py --sweep 1x=DIR_OR_JSONL[,...] 3x=DIR_OR_JSONL[,...]
    python tools/compare.py --list

Training writes <output_dir>/results.md (COCO AP, AP50, AP75, APs/m/l, s/iter), results.json and curves.png;
with --seeds, one such folder per seed (<output_dir>/seed<k>) and, in <output_dir>, the table over seeds.
`--record FILE.jsonl` appends one line per finished run to that experiment's record file (docs/results/).
`--tabulate` trains nothing: it prints one table over earlier runs (their output dirs or record files; with
`--plot PNG` it also draws their AP curves; with `--record` it appends their lines); `--sweep` prints one table
over several budgets. `--resume` (same arguments as the interrupted call) goes on from each method's latest
checkpoint (every --eval_interval epochs) and skips finished methods.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import compare  # noqa: E402
from benchmarks.compare import catalogue, launch, plots, results, tables  # noqa: E402

def parse_args(argv=None):
    budget = launch.default_budget()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=catalogue.methods_listing() + "\n" + catalogue.variants_note())
    parser.add_argument("--output_dir", default="output/compare", help="where results and runs go")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method names and groups (below; the variants: --list); default all. "
                             "With --tabulate: show only these runs")
    parser.add_argument("--list", action="store_true", help="print the methods, groups and variants, and exit")
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
    parser.add_argument("--tabulate", nargs="+", metavar="DIR_OR_JSONL", default=None,
                        help="train nothing: print the seeds table of earlier runs (output dirs or experiment "
                             "record files, one budget) and one line per run (APs by size, AP after each evaluation)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="with --tabulate: also draw those runs' AP after each evaluation, every method and "
                             "seed, into this PNG")
    parser.add_argument("--sweep", nargs="+", metavar="LABEL=PATH[,PATH]", default=None,
                        help="train nothing: print one table over several budgets, e.g. 1x=output/b1 "
                             "3x=output/b3a,output/b3b (each label: earlier runs' dirs or record files of one "
                             "budget)")
    parser.add_argument("--record", metavar="EXPERIMENT.jsonl", default=None,
                        help="append one line per finished (or stopped) run to this experiment's record file: the "
                             "runs this call trains, or with --tabulate those runs")
    parser.add_argument("--commit", default=None,
                        help="with --tabulate --record: the commit those runs used, for runs whose results do not "
                             "name it")
    return parser.parse_args(argv), list(budget)


def main(argv=None):
    args, budget_keys = parse_args(argv)
    budget = {k: getattr(args, k) for k in budget_keys}
    try:
        if args.list:
            print(catalogue.methods_listing() + "\n" + catalogue.variants_listing())
            return 0
        if args.plot and not args.tabulate:
            raise ValueError(f"--plot {args.plot} draws the runs of --tabulate DIR ...; give --tabulate too")
        if args.commit and not (args.tabulate and args.record):
            raise ValueError("--commit names the commit of tabulated runs for --record; give --tabulate and --record")
        if args.record:
            results.experiment_name(args.record)
        if args.sweep:
            if args.record:
                raise ValueError("--record appends the runs of a training call or of --tabulate, not of --sweep")
            budgets = [(label, results.collect_results(dirs)[0]) for label, dirs in results.parse_sweep(args.sweep)]
            print(tables.sweep_table(budgets), end="")
        elif args.tabulate:
            found, _ = results.collect_results(args.tabulate)
            curves = results.collect_curves(args.tabulate)
            if args.methods:
                found, curves = results.only_methods(found, curves, catalogue.parse_methods(args.methods))
            print(tables.seeds_table(found))
            print(tables.runs_table(found, curves), end="")
            if args.plot:
                plots.plot_seed_curves(curves, tables.method_labels(found), args.plot)
            if args.record:
                new, lines = results.record_runs(args.tabulate, args.record, args.commit)
                unknown = sum(1 for line in new if line["commit"] is None)
                print(f"compare: {len(new)} of {len(lines)} runs appended to {args.record}"
                      + (f" ({unknown} without a commit: give --commit SHA)" if unknown else ""), file=sys.stderr)
        elif args.seeds:
            try:
                seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            except ValueError:
                raise ValueError(f"--seeds must be comma-separated ints, got {args.seeds!r}") from None
            compare.run_seeds(args.output_dir, args.methods, budget, seeds, args.threads, args.dataset_dir,
                              overrides=args.opt, stop_stalled=args.stop_stalled, resume=args.resume,
                              record=args.record)
        else:
            compare.run_comparison(args.output_dir, args.methods, budget, args.seed, args.threads,
                                   args.dataset_dir, overrides=args.opt, stop_stalled=args.stop_stalled,
                                   resume=args.resume, record=args.record)
    except (ValueError, compare.CompareError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
