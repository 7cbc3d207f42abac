"""Label assignment statistics over a dataset split: positives per object (mean, distribution) by COCO size
bucket and FPN level, and the share of objects with no positive; Markdown table + PNG histogram.

    python tools/assign_stats.py -c benchmarks/configs/atss_only.yml [benchmarks/configs/dw.yml ...]
        [--methods atss,tal,dw] [--split train]
        [--max_images 64] [-o weights=output/.../model_final] [--output_dir output/assign_stats]

Task-aligned (tal, ppdet_tal), AutoAssign and DW weights depend on predictions: they come from the config's
model, at random init unless -o weights=... is given; tal_proxy uses anchor boxes with equal scores instead.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.engine import common  # noqa: E402
from ppassign.analysis import runner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, nargs="+",
                        help="ppdet YAML config(s) (model + datasets); several go into one table")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides key=value (weights=...)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the head's methods")
    parser.add_argument("--split", default="train", choices=sorted(runner.SPLITS), help="dataset split")
    parser.add_argument("--max_images", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--output_dir", default="output/assign_stats", help="where the reports go")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(common.main(runner.assignment_stats, config=args.config, overrides=args.opt,
                         methods=args.methods.split(",") if args.methods else None, split=args.split,
                         max_images=args.max_images, output_dir=args.output_dir))
