"""Positives per object (small / medium / large) of the RetinaNet assigners max-IoU, top-k, ATSS and FCOS's rule,
with one and nine anchors per location, over a COCO-format split whose images share one size.

    python tools/retina_assign_stats.py --annotations dataset/synthetic/annotations/train.json [--strides 8,16,32]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppassign  # noqa: E402,F401
from ppassign.analysis import retina_stats  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, help="COCO json of the split")
    parser.add_argument("--strides", default="8,16,32", help="FPN strides of the anchors")
    args = parser.parse_args(argv)
    try:
        strides = [int(s) for s in args.strides.split(",")]
        print(retina_stats.markdown(retina_stats.positive_stats(args.annotations, strides)))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
