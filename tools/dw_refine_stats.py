"""Share of DW refinement boundary points outside the feature map, per FPN level and side.

    python tools/dw_refine_stats.py -c configs/compare/dw.yml [-o weights=<model without .pdparams>]
        [--split eval] [--max_images 32]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.analysis import refine_stats  # noqa: E402
from ppassign.engine.common import PipelineError  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="a DWHead config with with_refine: true")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="key=value overrides (weights=...)")
    parser.add_argument("--split", default="eval", choices=["train", "eval"])
    parser.add_argument("--max_images", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        rows = refine_stats.refine_stats(args.config, args.opt, args.split, args.max_images)
    except (ValueError, PipelineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(refine_stats.markdown(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
