"""Draw label assignment maps: per FPN level, the positive (and for AutoAssign/DW negative) weight of every
location over the image, coloured by assigned object; for AutoAssign also the learned centre priors.

    python tools/vis_assign.py -c benchmarks/configs/atss_only.yml [--methods atss,tal,ppdet_atss]
        [--boxes boxes.json | --split eval --image_index 0] [-o weights=output/.../model_final]
        [--output_dir output/vis_assign]

The config's head decides the methods: PPYOLOEHead -> atss, tal, ppdet_atss, ppdet_tal, tal_proxy;
AutoAssignHead -> autoassign; DWHead -> dw. Without -o weights=... the model is at random init.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.engine import common  # noqa: E402
from ppassign.analysis import runner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="ppdet YAML config (model + datasets)")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides key=value (weights=...)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the head's methods")
    parser.add_argument("--boxes", default=None, help='JSON {"image" or "image_size": [H, W], "boxes", "labels"}')
    parser.add_argument("--split", default="eval", choices=sorted(runner.SPLITS), help="dataset split")
    parser.add_argument("--image_index", type=int, default=0, help="image of the split to draw")
    parser.add_argument("--output_dir", default="output/vis_assign", help="where the PNGs go")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(common.main(runner.visualize, config=args.config, overrides=args.opt,
                         methods=args.methods.split(",") if args.methods else None, boxes_file=args.boxes,
                         split=args.split, image_index=args.image_index, output_dir=args.output_dir))
