"""Detect objects and write drawn images + detections.json, from trained weights or an exported model:
python tools/infer.py -c <config.yml> -o weights=<path> --infer_img <image>
python tools/infer.py --model_dir output_inference/<name> --infer_dir <folder>"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.engine import common, predict  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=None, help="ppdet YAML config (with -o weights=...)")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides key=value, e.g. weights=...")
    parser.add_argument("--model_dir", default=None, help="exported model folder (Paddle Inference)")
    parser.add_argument("--infer_img", default=None, help="one image")
    parser.add_argument("--infer_dir", default=None, help="a folder of images")
    parser.add_argument("--output_dir", default=None,
                        help="where drawn images and detections.json go (default: output/infer/<config name>/, "
                             "or output/infer/<model_dir name>/)")
    parser.add_argument("--draw_threshold", type=float, default=predict.DRAW_THRESHOLD,
                        help="lowest score drawn and written")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything Paddle, ppdet and pycocotools print (default: known noise dropped)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(common.main(predict.infer, verbose=args.verbose, config=args.config, overrides=args.opt,
                         model_dir=args.model_dir, infer_img=args.infer_img, infer_dir=args.infer_dir,
                         output_dir=args.output_dir, draw_threshold=args.draw_threshold))
