"""Shared by tests/tools/: a tool of tools/ run in a subprocess, and the overrides that shrink a model of
benchmarks/configs to a few tiny generated images."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")
PPYOLOE = os.path.join(REPO, "benchmarks", "configs", "atss_only.yml")
AUTOASSIGN = os.path.join(REPO, "benchmarks", "configs", "autoassign.yml")
DW = os.path.join(REPO, "benchmarks", "configs", "dw_norefine.yml")


def tiny(dataset_dir):
    return [f"TrainDataset.dataset_dir={dataset_dir}", "TrainDataset.num_images=3", "TrainDataset.image_size=96",
            f"EvalDataset.dataset_dir={dataset_dir}", "EvalDataset.num_images=2", "EvalDataset.image_size=96"]


def run_tool(tool, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, os.path.join(TOOLS, tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
