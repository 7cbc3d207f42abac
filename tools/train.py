"""Train a detector from a ppdet YAML config: python tools/train.py -c <config.yml> [--eval] [-o key=value ...]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppassign.engine import common, train  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="ppdet YAML config")
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides key=value (dotted keys)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train N epochs and scale the config's schedule with it (LR decay, warm-up, "
                             "static_assigner_epoch); -o epoch=N changes the length only")
    parser.add_argument("--eval", action="store_true", help="evaluate (COCO) at each snapshot and at the end")
    parser.add_argument("-r", "--resume", default=None, help="checkpoint to resume from (path without .pdparams)")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (GPU only)")
    parser.add_argument("--use_vdl", action="store_true", help="log scalars to VisualDL")
    parser.add_argument("--vdl_log_dir", default=None, help="VisualDL log folder (default: from the config)")
    parser.add_argument("--output_dir", default=None, help="where checkpoints go (default: the config's save_dir)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for Paddle / numpy / random (default: the config's seed key, if any)")
    parser.add_argument("--override_ppdet_assigners", action="store_true",
                        help="make YAML names ATSSAssigner / TaskAlignedAssigner build ppassign's assigners")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything Paddle, ppdet and pycocotools print (default: known noise dropped)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(common.main(train.train, verbose=args.verbose, config=args.config, overrides=args.opt, eval=args.eval,
                         resume=args.resume, amp=args.amp, use_vdl=args.use_vdl, vdl_log_dir=args.vdl_log_dir,
                         output_dir=args.output_dir, override_ppdet_assigners=args.override_ppdet_assigners,
                         seed=args.seed, epochs=args.epochs))
