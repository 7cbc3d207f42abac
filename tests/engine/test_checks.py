"""Mistakes in the config or the data are found when a tool starts (ppassign.engine.checks): one line on stderr
naming the key, exit status 2, before any training step, nothing written; schedules shortened with -o epoch=N
are warned about, --epochs N scales them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.engine import checks, config, export, predict
from ppassign.engine.common import PipelineError, checking
import own_data_cases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "quickstart", "quickstart_tal.yml")
CATEGORIES = [{"id": 3, "name": "square"}, {"id": 7, "name": "bar"}]


def write_coco(root, categories=CATEGORIES, name="instances.json"):
    """Two 64x48 images with one box each under `root`/images, annotations in `root`/annotations/`name`."""
    import cv2
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for index in range(2):
        cv2.imwrite(os.path.join(root, "images", f"{index}.jpg"), np.full((48, 64, 3), 40 * index, np.uint8))
        images.append({"id": index + 1, "file_name": f"{index}.jpg", "height": 48, "width": 64})
        annotations.append({"id": index + 1, "image_id": index + 1, "category_id": categories[0]["id"],
                            "bbox": [8, 8, 20, 16], "area": 320, "iscrowd": 0})
    with open(os.path.join(root, "annotations", name), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return str(root)


def own_config(path, root, extra=""):
    """The quickstart model, one short epoch, on a user's COCO dataset at `root` (README "Your own data")."""
    return own_data_cases.write_user_config(path, CONFIG, root, "epoch: 1\nwidth_mult: 0.125\n" + extra)


@pytest.fixture
def data(tmp_path):
    return write_coco(tmp_path / "data")


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def run_tool_expecting_error(tool, *args, cwd):
    """Run a tool that must fail on a config mistake; returns its one error line."""
    before = files_under(cwd)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Epoch: [" not in proc.stdout
    assert files_under(cwd) == before  # no output folders, no checkpoints
    return errors[0]


# ----------------------------------------------------------------------------------- each error, by tool

def test_train_with_eval_and_a_wrong_eval_annotation_path_stops_before_training(data, tmp_path):
    cfg = own_config(tmp_path / "mine.yml", data)
    line = run_tool_expecting_error("train.py", "-c", cfg, "--eval", "-o", "EvalDataset.anno_path=annotations/x.json",
                                    f"save_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert line == f"error: EvalDataset.anno_path: file not found: {os.path.join(data, 'annotations', 'x.json')}"


def test_train_with_num_classes_below_the_categories_names_key_file_and_categories(data, tmp_path):
    cfg = own_config(tmp_path / "mine.yml", data)
    line = run_tool_expecting_error("train.py", "-c", cfg, "-o", "num_classes=1", f"save_dir={tmp_path / 'out'}",
                                    cwd=tmp_path)
    anno = os.path.join(data, "annotations", "instances.json")
    assert line == (f"error: num_classes: 1 is smaller than the 2 categories of TrainDataset.anno_path {anno} "
                    f"(square, bar); set num_classes: 2")


def test_infer_with_a_missing_test_annotation_file_is_an_error(data, tmp_path):
    cfg = own_config(tmp_path / "mine.yml", data)
    weights = tmp_path / "w"
    weights.with_suffix(".pdparams").write_bytes(b"")
    line = run_tool_expecting_error("infer.py", "-c", cfg, "--infer_img", os.path.join(data, "images", "0.jpg"),
                                    "-o", f"TestDataset.anno_path={tmp_path / 'none.json'}", f"weights={weights}",
                                    cwd=tmp_path)
    assert line.startswith(f"error: TestDataset.anno_path: file not found: {tmp_path / 'none.json'}")


def test_eval_with_a_missing_image_folder_is_an_error(data, tmp_path):
    cfg = own_config(tmp_path / "mine.yml", data)
    line = run_tool_expecting_error("eval.py", "-c", cfg, "-o", "EvalDataset.image_dir=imgs", "weights=w",
                                    cwd=tmp_path)
    assert line == f"error: EvalDataset.image_dir: folder not found: {os.path.join(data, 'imgs')}"


def test_export_with_a_missing_test_annotation_file_is_an_error(data, tmp_path):
    cfg = own_config(tmp_path / "mine.yml", data)
    weights = tmp_path / "w"
    weights.with_suffix(".pdparams").write_bytes(b"")
    with pytest.raises(PipelineError, match=r"^TestDataset\.anno_path: file not found"):
        export.export(cfg, [f"TestDataset.anno_path={tmp_path / 'none.json'}", f"weights={weights}"],
                      output_dir=str(tmp_path / "inference"))
    assert not os.path.exists(tmp_path / "inference")


def test_missing_dataset_folder_is_an_error_naming_dataset_dir(data, tmp_path):
    cfg = config.load_config(own_config(tmp_path / "mine.yml", data), [f"TrainDataset.dataset_dir={tmp_path}/no"])
    with pytest.raises(PipelineError, match=r"^TrainDataset\.dataset_dir: folder not found: .*/no$"):
        checks.check_dataset_files(cfg, "TrainDataset")


def test_train_and_eval_annotations_with_other_categories_are_an_error(data, tmp_path):
    write_coco(data, categories=CATEGORIES[:1], name="val.json")
    cfg = config.load_config(own_config(tmp_path / "mine.yml", data), ["EvalDataset.anno_path=annotations/val.json"])
    with pytest.raises(PipelineError, match=r"^EvalDataset\.anno_path: .*val\.json has other categories \(square\) "
                                            r"than TrainDataset's .*instances\.json \(square, bar\)"):
        checks.check_num_classes(cfg, ["TrainDataset", "EvalDataset"])


def test_annotation_file_without_categories_is_an_error(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(PipelineError, match=r"^X\.anno_path: .*a\.json is not a COCO annotation file \(no categ"):
        checks.read_categories(str(path), "X.anno_path")


def test_epochs_together_with_o_epoch_is_an_error():
    with pytest.raises(PipelineError, match=r"^epoch: give the length once"):
        config.load_config(CONFIG, ["epoch=3"], epochs=3)


# ------------------------------------------------------------------------------------ warnings, no errors

def test_num_classes_above_the_categories_is_a_warning(data, tmp_path, capsys):
    cfg = config.load_config(own_config(tmp_path / "mine.yml", data), ["num_classes=4"])
    checks.check_num_classes(cfg, ["TrainDataset"])
    err = capsys.readouterr().err
    assert err.startswith("warning: num_classes: 4 is larger than the 2 categories of TrainDataset.anno_path ")
    assert err.count("\n") == 1 and "classes 2..3 never get a label" in err


def test_warnings_are_dropped_when_a_check_fails(capsys):
    with pytest.raises(PipelineError):
        with checking():
            checks.warn("held")
            raise PipelineError("the only line")
    assert capsys.readouterr().err == ""
    with checking():
        checks.warn("shown after the checks")
    assert capsys.readouterr().err == "warning: shown after the checks\n"


def test_synthetic_dataset_passes_the_checks_without_writing_anything(tmp_path):
    cfg = config.load_config(CONFIG, [f"TrainDataset.dataset_dir={tmp_path}/synthetic"])
    checks.check_dataset_files(cfg, "TrainDataset")
    assert [name for _, name in checks.check_num_classes(cfg, ["TrainDataset"])][:2] == ["ellipse", "frame"]
    assert not os.path.exists(tmp_path / "synthetic")


def test_large_annotation_file_is_scanned_for_its_categories(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    text = json.dumps({"info": {"description": 'a "categories" word'}, "images": [{"id": 1}] * 50,
                       "categories": CATEGORIES})
    path.write_text(text)
    monkeypatch.setattr(checks, "FULL_PARSE_BYTES", 0)
    monkeypatch.setattr(checks, "SCAN_CHUNK_BYTES", 64)  # the marker straddles chunk boundaries
    assert checks.read_categories(str(path), "k") == [(3, "square"), (7, "bar")]


# --------------------------------------------------------------------------------------------- schedule

def test_o_epoch_shorter_than_the_schedule_warns_naming_each_key(capsys):
    with checking():
        config.load_config(CONFIG, ["epoch=3"], check_schedule=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: epoch: 3 (from -o) leaves the schedule of the config's "
                                               "24 epochs: ")
    assert "LearningRate.CosineDecay.max_epochs 24" in err[0]
    assert "PPYOLOEHead.static_assigner_epoch 8 (the head's dynamic assigner never runs)" in err[0]
    assert err[0].endswith("pass --epochs 3 instead of -o epoch=3 to scale them with it")


def test_no_schedule_warning_without_o_epoch_or_when_the_schedule_is_overridden_too(capsys):
    config.load_config(CONFIG, [], check_schedule=True)
    config.load_config(CONFIG, ["epoch=3", "PPYOLOEHead.static_assigner_epoch=1", "LearningRate.schedulers="
                                "[{name: CosineDecay, max_epochs: 3}, {name: LinearWarmup, steps: 4}]"],
                       check_schedule=True)
    assert capsys.readouterr().err == ""


def test_epochs_scales_the_lr_schedule_warmup_and_static_assigner_epoch(capsys):
    cfg = config.load_config(CONFIG, [], epochs=3)
    cosine, warmup = cfg["LearningRate"]["schedulers"]
    assert (cfg.epoch, cosine.max_epochs, warmup.steps, cfg["PPYOLOEHead"]["static_assigner_epoch"]) == (3, 3, 4, 1)
    assert capsys.readouterr().out == (
        "ppassign: --epochs 3 scales the config's 24-epoch schedule: epoch 24 -> 3, LearningRate.CosineDecay."
        "max_epochs 24 -> 3, LearningRate.LinearWarmup.steps 30 -> 4, PPYOLOEHead.static_assigner_epoch 8 -> 1\n")


def test_epochs_scales_piecewise_milestones_of_name_form_schedulers_for_this_run_only():
    tood = os.path.join(REPO, "configs", "tood", "tood_tiny_synthetic.yml")
    cfg = config.load_config(tood, [], epochs=6)
    assert cfg["LearningRate"]["schedulers"][0]["milestones"] == [4, 6]
    assert cfg["TOODHead"]["static_assigner_epoch"] == 2
    assert config.load_config(tood)["LearningRate"]["schedulers"][0]["milestones"] == [8, 11]


def test_epochs_below_one_is_an_error():
    with pytest.raises(PipelineError, match="--epochs must be at least 1"):
        config.load_config(CONFIG, [], epochs=0)
