"""tools/vis_assign.py (ppassign.analysis.runner.visualize) on a tiny generated dataset."""
import json
import os

import pytest

import ppassign  # noqa: F401
from ppassign.engine.common import PipelineError
from ppassign.analysis import runner
from tool_runs import AUTOASSIGN, DW, PPYOLOE, run_tool, tiny


def test_vis_assign_tool_writes_one_png_per_method(tmp_path):
    out = tmp_path / "vis"
    proc = run_tool("vis_assign.py", "-c", PPYOLOE, "--methods", "atss,tal,ppdet_atss", "--output_dir", str(out),
                    "-o", *tiny(tmp_path / "data"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["eval_0_atss.png", "eval_0_ppdet_atss.png", "eval_0_tal.png"]


def test_vis_assign_from_boxes_file_draws_autoassign_maps_and_priors(tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"image_size": [80, 100], "boxes": [[10, 10, 50, 60], [60, 20, 64, 24]],
                                 "labels": [0, 3]}))
    paths = runner.visualize(AUTOASSIGN, tiny(tmp_path / "data"), boxes_file=str(boxes),
                             output_dir=str(tmp_path / "vis"))
    assert [os.path.basename(p) for p in paths] == ["boxes_autoassign.png", "autoassign_center_priors.png"]
    assert all(os.path.getsize(p) > 0 for p in paths)


def test_vis_assign_from_trained_weights(tmp_path):
    """Weights saved from the config's model load strictly; a method of another head is refused."""
    import paddle
    from ppassign.analysis import models
    model = models.AnalysisModel(DW, tiny(tmp_path / "data"))
    paddle.save(model.model.state_dict(), str(tmp_path / "w.pdparams"))
    paths = runner.visualize(DW, tiny(tmp_path / "data") + [f"weights={tmp_path / 'w'}"], split="train",
                             output_dir=str(tmp_path / "vis"))
    assert [os.path.basename(p) for p in paths] == ["train_0_dw.png"]
    with pytest.raises(PipelineError, match="supports dw"):
        runner.visualize(DW, tiny(tmp_path / "data"), methods=["atss"], output_dir=str(tmp_path / "vis"))


def test_boxes_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"boxes": [[0, 0, 4, 4]], "labels": [0]}))
    with pytest.raises(PipelineError, match="image_size"):
        runner.load_boxes_file(str(bad))
    with pytest.raises(PipelineError, match="not found"):
        runner.load_boxes_file(str(tmp_path / "missing.json"))
