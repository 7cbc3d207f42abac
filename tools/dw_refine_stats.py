"""Share of DW refinement boundary points outside the feature map, per FPN level and side; with --iou, whether
the refinement brings a model's boxes closer to the objects (IoU of coarse and refined boxes at each object's
top-k scoring candidates, per object size).

    python tools/dw_refine_stats.py -c benchmarks/configs/dw.yml [-o weights=<model without .pdparams>]
        [--split eval] [--max_images 32] [--iou [--topk 9]]
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
    parser.add_argument("--iou", action="store_true", help="IoU of coarse and refined boxes instead")
    parser.add_argument("--topk", type=int, default=9, help="with --iou: candidates per object")
    args = parser.parse_args(argv)
    try:
        if args.iou:
            rows = refine_stats.refine_iou(args.config, args.opt, args.split, args.max_images, args.topk)
            table = refine_stats.iou_markdown(rows, args.topk)
        else:
            table = refine_stats.markdown(refine_stats.refine_stats(args.config, args.opt, args.split,
                                                                    args.max_images))
    except (ValueError, PipelineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
