"""Export a Paddle Inference model (model.json/.pdmodel, model.pdiparams, infer_cfg.yml):
python tools/export_model.py -c <config.yml> -o weights=<path> [--output_dir output_inference]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.engine import common, export  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="ppdet YAML config")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides key=value, e.g. weights=...")
    parser.add_argument("--output_dir", default="output_inference",
                        help="the model goes to <output_dir>/<config name>/")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything Paddle, ppdet and pycocotools print (default: known noise dropped)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(common.main(export.export, verbose=args.verbose, config=args.config, overrides=args.opt,
                         output_dir=args.output_dir))
