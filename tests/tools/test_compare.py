"""tools/compare.py and its library benchmarks/compare: the catalogue, launches, resume, tables and plots."""
import functools
import json
import os

import pytest
import yaml

import ppassign  # noqa: F401
from ppassign.engine.config import load_config
from benchmarks import compare
from tool_runs import run_tool


def test_compare_tool_trains_two_methods_and_writes_table_and_curves(tmp_path):
    out = tmp_path / "cmp"
    proc = run_tool("compare.py", "--output_dir", str(out), "--methods", "fcos,dw_norefine", "--epochs", "1",
                    "--train_images", "4", "--val_images", "2", "--image_size", "64", "--batch_size", "4",
                    "--eval_interval", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = (out / "results.md").read_text()
    assert "| FCOS (ppdet FCOSHead, baseline) |" in table and "| DW without refinement |" in table
    assert "(failed)" not in table
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["fcos", "dw_norefine"]
    assert all(r["AP"] is not None and r["sec_per_iter"] > 0 and r["iterations"] == 1 for r in rows)
    assert (out / "curves.png").stat().st_size > 0


def test_compare_rejects_unknown_method_and_bad_budget():
    with pytest.raises(ValueError, match="unknown method 'retina'"):
        compare.parse_methods("fcos,retina")
    budget = compare.default_budget()
    budget["epochs"] = 0
    with pytest.raises(ValueError, match="epochs"):
        compare.check_budget(budget)


LOG = """\
[11/21 09:21:53] ppdet.engine INFO: Epoch: [0] [0/2] learning_rate: 0.000200 loss: 4.17 loss_cls: 0.55 eta: 0:00:04 batch_cost: 2.0883 data_cost: 0.02 ips: 3.8 images/s
[11/21 09:21:55] ppdet.engine INFO: Epoch: [0] [1/2] learning_rate: 0.000290 loss_cls: 1.05 loss: 4.13 eta: 0:00:01 batch_cost: 1.5 data_cost: 0.0 ips: 4.1 images/s
[11/21 09:21:56] ppdet.engine WARNING: Evaluation results empty, this may be due to training iterations being too few
[11/21 09:21:57] ppdet.engine INFO: Epoch: [1] [0/2] learning_rate: 0.000300 loss: 3.00 eta: 0:00:01 batch_cost: 1.0 data_cost: 0.0 ips: 4.1 images/s
""" + "".join(f" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {v}\n"
              for v in ("0.100", "0.200", "0.300", "0.010", "0.020", "-1.000", "0.1", "0.1", "0.1", "0.1", "0.1",
                        "0.1")) + "ppassign: training finished in 12 s; weights: x\n"


def test_parse_train_log_reads_losses_costs_and_evaluations():
    parsed = compare.parse_train_log(LOG)
    assert parsed["loss"] == [(0, 0, 2, 4.17), (0, 1, 2, 4.13), (1, 0, 2, 3.0)]
    assert parsed["batch_cost"] == [2.0883, 1.5, 1.0]
    assert [e for e, _ in parsed["evals"]] == [0, 1]
    assert parsed["evals"][0][1] == [0.0] * 12
    assert parsed["evals"][1][1][:3] == [0.1, 0.2, 0.3]
    row = compare.summarize_run(parsed, iterations=4)
    assert (row["AP"], row["APl"], row["sec_per_iter"], row["iterations"], row["train_seconds"]) == \
        (0.1, -1.0, 1.5, 4, 12.0)
    assert "| x | 10.0 | 20.0 | 30.0 | 1.0 | 2.0 | n/a | 1.50 | 12 | 4 |" in \
        compare.markdown_table([dict(row, label="x")])


def test_parse_train_log_collects_the_box_regression_terms_only():
    lines = "".join(f"[x] ppdet.engine INFO: Epoch: [0] [{i}/3] loss_cls: 0.5 loss_box: {box} loss_quality: "
                    f"0.7 loss: 2.0 batch_cost: 0.5\n" for i, box in enumerate(("0.9", "0.8", "0.7")))
    parsed = compare.parse_train_log(lines)
    assert parsed["regression"] == {"loss_box": [0.9, 0.8, 0.7]}
    assert compare.parse_train_log(LOG)["regression"] == {}


def test_stalled_regression_flags_a_flat_box_loss():
    # ppdet's FCOSHead with a dead regression branch: loss_box stays at ~0.93 (measured in docs/analysis.md).
    flat = [0.933, 0.925, 0.919, 0.904, 0.920] + [0.93, 0.928, 0.925, 0.931, 0.927]
    falling = [0.946, 0.887, 0.756, 0.716, 0.642] + [0.6, 0.58, 0.56, 0.55, 0.53]
    assert compare.stalled_regression({"loss_box": flat, "loss_loc": falling}) == ["loss_box"]


def test_stalled_regression_leaves_short_logs_and_small_but_real_drops_alone():
    assert compare.stalled_regression({"loss_box": [0.9] * 9}) == []  # fewer than 2 * window values
    assert compare.stalled_regression({"loss_iou": [1.0] * 5 + [0.96] * 5}) == []  # 4% down
    assert compare.stalled_regression({"loss_iou": [1.0] * 5 + [0.98] * 5}) == ["loss_iou"]  # 2% down


def test_tables_mark_a_run_whose_regression_stalled():
    row = {"method": "fcos", "label": "FCOS", "ok": True, "AP": 0.0, "AP50": 0.0, "AP75": 0.0,
           "sec_per_iter": 0.5, "stalled": ["loss_box"]}
    mark = "| FCOS (regression stalled: loss_box) |"
    assert mark in compare.markdown_table([row])
    assert mark in compare.seeds_table({0: [row], 1: [dict(row, stalled=[])]})
    assert "| FCOS |" in compare.seeds_table({0: [dict(row, stalled=[])]})  # rows of older records: no key
    assert mark in compare.runs_table({0: [row]})


FAKE_TRAIN = """\
import sys, time
box = sys.argv[1]  # 'flat' or 'falling'
for i in range({steps}):
    value = 0.93 if box == "flat" else 0.93 * (1 - i / 400)
    print(f"ppdet.engine INFO: Epoch: [0] [{{i}}/{steps}] loss_box: {{value:.4f}} loss: 2.0 batch_cost: 0.01",
          flush=True)
    time.sleep({pause})
"""


def _fake_trainer(tmp_path, monkeypatch, box, steps, pause):
    """Make train_method run, instead of tools/train.py, a script logging `steps` lines of a flat/falling loss_box."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN.format(steps=steps, pause=pause))
    monkeypatch.setattr(compare, "TRAIN_TOOL", str(script))
    popen = compare.subprocess.Popen
    monkeypatch.setattr(compare.subprocess, "Popen", lambda cmd, **kw: popen([cmd[0], cmd[1], box], **kw))


def test_train_method_stops_a_run_whose_box_loss_stays_flat(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    run = compare.train_method("fcos", compare.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                               stop_stalled=50, poll_seconds=0.2)
    assert not run["ok"] and run["stopped"].startswith("regression stalled (loss_box) at iteration")
    assert 50 <= compare.logged_iterations(run["parsed"]) < 3000


def test_train_method_lets_a_run_with_falling_box_loss_finish(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "falling", steps=200, pause=0.002)
    run = compare.train_method("fcos", compare.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                               stop_stalled=50, poll_seconds=0.1)
    assert run["ok"] and "stopped" not in run and compare.logged_iterations(run["parsed"]) == 200


def _coco_block(ap):
    return "".join(f" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {v}\n"
                   for v in [ap] + ["0.1"] * 11)


def _line(epoch, step, box):
    return (f"[x] ppdet.engine INFO: Epoch: [{epoch}] [{step}/2] loss_box: {box} loss: 2.0 batch_cost: "
            f"{epoch + 1}.0\n")


def test_parse_train_log_of_a_resumed_run_drops_what_the_first_run_logged_after_its_checkpoint():
    # First run: epochs 0-1 with an evaluation after each, killed during epoch 2 (checkpoint after epoch 2 = "1").
    first = _line(0, 0, 0.9) + _line(0, 1, 0.8) + _coco_block("0.100") + _line(1, 0, 0.7) + _line(1, 1, 0.6) + \
        _coco_block("0.200") + _line(2, 0, 0.5)
    second = "compare: resumed after epoch 2 from run/ckpt/config/1\n" + _line(2, 0, 0.55) + _line(2, 1, 0.45) + \
        _coco_block("0.300") + "ppassign: training finished in 7 s; weights: x\n"
    parsed = compare.parse_train_log(first + second)
    assert [(e, s) for e, s, _, _ in parsed["loss"]] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert parsed["regression"] == {"loss_box": [0.9, 0.8, 0.7, 0.6, 0.55, 0.45]}
    assert parsed["batch_cost"] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert [(e, stats[0]) for e, stats in parsed["evals"]] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert parsed["resumed"] == [2] and parsed["seconds"] == 7.0
    assert compare.parse_train_log(LOG)["resumed"] == []


def test_parse_train_log_drops_a_half_printed_evaluation_of_the_killed_run():
    log = _line(0, 0, 0.9) + _coco_block("0.100")[:200] + "\ncompare: resumed after epoch 0 from c/0\n" + \
        _line(0, 0, 0.8) + _coco_block("0.200")
    parsed = compare.parse_train_log(log)
    assert [(e, stats[0]) for e, stats in parsed["evals"]] == [(0, 0.2)]
    assert parsed["loss"] == [(0, 0, 2, 2.0)]


def _touch(folder, *names):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        open(os.path.join(folder, name), "w").close()


def test_resume_point_takes_the_latest_epoch_checkpoint_with_its_optimizer_state(tmp_path):
    assert compare.resume_point(str(tmp_path / "missing")) is None
    folder = str(tmp_path / "config")
    _touch(folder, "best_model.pdparams", "best_model.pdopt", "1.pdparams", "1.pdopt", "3.pdparams", "3.pdopt",
           "11.pdparams", "11.pdopt", "13.pdparams")  # 13 has no .pdopt: not resumable
    assert compare.resume_point(str(tmp_path)) == ("epoch", os.path.join(folder, "11"), 12)
    _touch(folder, "model_final.pdparams", "model_final.pdopt")
    assert compare.resume_point(str(tmp_path)) == ("finished", os.path.join(folder, "model_final"))


RESUME_TRAIN = """\
import sys
start = int(sys.argv[sys.argv.index("-r") + 1].rsplit("/", 1)[1]) + 1 if "-r" in sys.argv else 0
for epoch in range(start, 3):
    print(f"ppdet.engine INFO: Epoch: [{epoch}] [0/1] loss_box: 0.5 loss: 2.0 batch_cost: 0.01", flush=True)
print("args:", " ".join(sys.argv[1:]))
"""


def _resume_trainer(tmp_path, monkeypatch):
    """train_method runs, instead of tools/train.py, a script that logs epochs from its -r checkpoint on."""
    script = tmp_path / "fake_train.py"
    script.write_text(RESUME_TRAIN)
    monkeypatch.setattr(compare, "TRAIN_TOOL", str(script))


def test_train_method_resumes_from_the_latest_checkpoint_and_appends_to_the_log(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    first = compare.train_method("fcos", budget, out, 0, ds)
    assert first["ok"] and [e for e, *_ in first["parsed"]["loss"]] == [0, 1, 2]
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "0.pdparams", "0.pdopt")  # as if killed in epoch 1
    run = compare.train_method("fcos", budget, out, 0, ds, resume=True)
    with open(run["log"]) as f:
        text = f.read()
    assert f"compare: resumed after epoch 1 from {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}" in text
    assert text.rstrip().endswith(f"-r {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}")
    assert run["ok"] and [e for e, *_ in run["parsed"]["loss"]] == [0, 1, 2] and run["parsed"]["resumed"] == [1]


def test_train_method_reads_a_finished_run_instead_of_training_it_again(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    compare.train_method("fcos", budget, out, 0, ds)
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "model_final.pdparams", "model_final.pdopt")
    monkeypatch.setattr(compare.subprocess, "Popen", None)  # training again would fail
    run = compare.train_method("fcos", budget, out, 0, ds, resume=True)
    assert run["ok"] and len(run["parsed"]["loss"]) == 3


def test_train_method_refuses_to_resume_a_run_made_with_other_arguments(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    compare.train_method("fcos", budget, out, 0, ds)
    with pytest.raises(compare.CompareError, match="other arguments \\('0' then, '1' now\\)"):
        compare.train_method("fcos", budget, out, 1, ds, resume=True)
    with pytest.raises(compare.CompareError, match="config.yml was written for another budget"):
        compare.train_method("fcos", dict(budget, epochs=9), out, 0, ds, resume=True)


def test_tables_mark_a_resumed_run():
    row = {"method": "fcos", "label": "FCOS", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.3,
           "sec_per_iter": 0.5, "stalled": [], "resumed": [12]}
    assert "| FCOS (resumed after epoch 12) |" in compare.markdown_table([row])
    assert "| FCOS (resumed after epoch 12) |" in compare.seeds_table({0: [row]})


def test_run_comparison_reports_a_stopped_run_as_stopped_with_its_iterations(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    monkeypatch.setattr(compare, "train_method", functools.partial(compare.train_method, poll_seconds=0.2))
    compare.run_comparison(str(tmp_path / "out"), "fcos", stop_stalled=50, dataset_dir=str(tmp_path / "ds"))
    with open(tmp_path / "out" / "results.json") as f:
        row = json.load(f)["rows"][0]
    assert row["stopped"].startswith("regression stalled (loss_box)") and 50 <= row["iterations"] < 3000
    assert "FCOS (ppdet FCOSHead, baseline) (stopped)" in (tmp_path / "out" / "results.md").read_text()


def test_run_comparison_rejects_a_bad_stop_stalled(tmp_path):
    with pytest.raises(ValueError, match="stop_stalled must be an int >= 0"):
        compare.run_comparison(str(tmp_path), "fcos", stop_stalled=-1)


def test_tables_mark_a_stopped_run():
    row = {"method": "fcos", "label": "FCOS", "ok": False, "stopped": "regression stalled (loss_box) at iteration 60",
           "stalled": ["loss_box"], "AP": None, "AP50": None, "AP75": None, "iterations": 60}
    assert "| FCOS (stopped) (regression stalled: loss_box) |" in compare.markdown_table([row])


def test_compare_configs_share_backbone_neck_optimizer_and_data():
    """Every method of benchmarks/configs differs only in its head (and FCOS in its target op)."""
    shared = ("CSPResNet", "FPN", "OptimizerBuilder", "depth_mult", "width_mult", "epoch", "EvalReader")
    seen = {}
    for name, (filename, _) in compare.METHODS.items():
        if name in compare.VARIANTS:
            continue
        cfg = load_config(os.path.join(compare.CONFIG_DIR, filename))
        assert cfg.get(cfg.architecture)["backbone"] == "CSPResNet"
        assert cfg.get(cfg.architecture)["neck"] == "FPN"
        values = {key: repr(cfg[key]) for key in shared}
        values["lr"] = cfg["LearningRate"]["base_lr"]
        values["train"] = (cfg["TrainDataset"].num_images, cfg["TrainDataset"].image_size, cfg["TrainDataset"].seed)
        seen[name] = values
        if name == "atss_only":
            assert cfg["PPYOLOEHead"]["static_assigner_epoch"] >= 1000
        if name == "tal_only":
            assert cfg["PPYOLOEHead"]["static_assigner_epoch"] == 0
    first = seen["fcos"]
    assert all(values == first for values in seen.values())


def test_compare_groups_expand_to_the_retinanet_rows():
    assert compare.parse_methods("all") == ["fcos", "atss_only", "tal_only", "autoassign", "dw_norefine", "dw"]
    assert compare.parse_methods("retinanet") == ["retina_maxiou", "retina_topk", "retina_atss", "retina_fcos_rule",
                                                  "retina_noisy_anchor", "retina_hambox"]
    assert compare.parse_methods("fcos,retinanet9,fcos")[:2] == ["fcos", "retina9_maxiou"]
    assert len(compare.parse_methods("retinanet,retinanet9")) == 12


def test_retinanet_compare_configs_differ_only_in_assigner_and_anchors():
    for name in compare.GROUPS["retinanet"] + compare.GROUPS["retinanet9"]:
        cfg = load_config(os.path.join(compare.CONFIG_DIR, compare.METHODS[name][0]))
        head = cfg["PPAssignRetinaHead"]
        anchors = head["anchor_generator"]
        assert cfg.architecture == "RetinaNet"
        assert head["bbox_assigner"] == {"maxiou": "PPAssignMaxIoUAssigner", "topk": "PPAssignTopKAssigner",
                                         "atss": "PPAssignATSSRetinaAssigner", "fcos_rule": "PPAssignFCOSRuleAssigner",
                                         "noisy_anchor": "PPAssignNoisyAnchorAssigner",
                                         "hambox": "PPAssignHAMBoxAssigner"}[name.split("_", 1)[1]]
        assert anchors["scales_per_octave"] * len(anchors["aspect_ratios"]) == (9 if name.startswith("retina9") else 1)


def test_seeds_table_shows_every_seed_mean_and_spread():
    row = lambda seed, ap: {"method": "m", "label": "M", "ok": True, "AP": ap, "AP50": 2 * ap, "AP75": ap / 2,
                            "sec_per_iter": 0.5}
    table = compare.seeds_table({0: [row(0, 0.10)], 1: [row(1, 0.14)]})
    assert "| M | 10.0 | 14.0 | 12.0 | 4.0 | 24.0 | 8.0 | 6.0 | 0.50 |" in table


def _variant_paths(name):
    """(variant config path, its YAML, the method config it extends): a variant names one method file as _BASE_."""
    path = os.path.join(compare.CONFIG_DIR, compare.METHODS[name][0])
    with open(path, encoding="utf-8") as f:
        own = yaml.safe_load(f)
    (base,) = own["_BASE_"]
    return path, own, os.path.normpath(os.path.join(os.path.dirname(path), base))


def _plain(value):
    """A config value as plain data: objects (datasets, !Tag schedulers) by type and attributes."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return (type(value).__name__, _plain(vars(value)))
    return value


def _sections(path):
    """{top-level key: plain value} of a loaded config (a snapshot: ppdet's loader reuses one global dict)."""
    cfg = load_config(path)
    return {key: repr(_plain(value)) for key, value in cfg.items() if key != "filename"}, cfg.architecture


@pytest.mark.parametrize("name", sorted(compare.VARIANTS))
def test_each_variant_changes_exactly_the_sections_it_names(name):
    path, own, base_path = _variant_paths(name)
    named = set(own) - {"_BASE_", "weights"}
    cfg, _ = _sections(path)
    base, architecture = _sections(base_path)
    changed = {key for key in set(cfg) | set(base) if key != "weights" and cfg.get(key) != base.get(key)}
    assert changed == named
    if compare.VARIANTS[name][0] != "setup":  # alignment and ablation rows change only the head
        assert named <= {"AutoAssignHead", "DWHead"} and len(named) == 1


@pytest.mark.parametrize("name", sorted(compare.VARIANTS))
def test_each_variant_builds_its_model(name):
    """The switches a variant names exist in the head / neck it configures (a typo would fail here)."""
    from ppassign.engine.config import build_model
    path, own, _ = _variant_paths(name)
    model = build_model(load_config(path))
    head = model.fcos_head
    for key, value in own.get(type(head).__name__, {}).items():
        if key == "conv_bias":
            assert (head.cls_tower.conv0.bias is not None) == value
        elif key == "fpn_stride":
            assert head.fpn_stride == value and len(model.neck.out_shape) == len(value)
        else:
            assert getattr(head, key) == value, key


def test_derived_config_takes_the_learning_rate_of_the_variant():
    budget = compare.default_budget()
    assert yaml.safe_load(compare.derived_config("autoassign_sgd", budget))["LearningRate"]["base_lr"] == 0.005
    assert yaml.safe_load(compare.derived_config("autoassign_noobj", budget))["LearningRate"]["base_lr"] == 0.002
    assert compare.parse_methods("dw_ablation") == ["dw_norefine_posonly", "dw_norefine_negonly"]
    assert "autoassign_sgd" not in compare.parse_methods("all")


def _saved_run(folder, budget, rows_by_seed):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"budget": budget, "rows": rows_by_seed}))
    return str(folder)


def test_collect_results_merges_runs_of_one_budget_and_rejects_another(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "sec_per_iter": 1.0}
    budget = compare.default_budget()
    a = _saved_run(tmp_path / "a", budget, {"0": [row("fcos", 0.1)], "1": [row("fcos", 0.2)]})
    b = _saved_run(tmp_path / "b", budget, {"0": [row("dw", 0.3)], "1": [row("dw", 0.5)]})
    results, _ = compare.collect_results([a, b])
    assert sorted(results) == [0, 1] and [r["method"] for r in results[1]] == ["fcos", "dw"]
    assert "| DW | 30.0 | 50.0 | 40.0 | 20.0 |" in compare.seeds_table(results)
    c = _saved_run(tmp_path / "c", dict(budget, epochs=99), {"0": [row("dw", 0.3)]})
    with pytest.raises(compare.CompareError, match="another budget"):
        compare.collect_results([a, c])
    with pytest.raises(compare.CompareError, match="no results.json"):
        compare.collect_results([str(tmp_path)])


def test_runs_table_lists_each_seed_with_its_curve_from_the_seed_folders(tmp_path):
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap, "AP50": ap,
                              "AP75": ap, "APs": ap, "APm": ap, "APl": -1.0, "sec_per_iter": 1.0}
    budget = compare.default_budget()
    seeds_dir = _saved_run(tmp_path / "a", budget, {"0": [row("fcos", 0.1)], "1": [row("fcos", 0.2)]})
    (tmp_path / "a" / "seed1").mkdir()
    (tmp_path / "a" / "seed1" / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 1, "rows": [row("fcos", 0.2)],
         "curves": {"fcos": {"loss": [], "evals": [[3, [0.05] + [0.0] * 11], [7, [0.2] + [0.0] * 11]]}}}))
    single = tmp_path / "b"
    single.mkdir()
    (single / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 0, "rows": [row("dw", 0.3)],
         "curves": {"dw": {"loss": [], "evals": [[7, [0.3] + [0.0] * 11]]}}}))
    dirs = [seeds_dir, str(single)]
    results, _ = compare.collect_results(dirs)
    curves = compare.collect_curves(dirs)
    assert curves == {1: {"fcos": [(4, 0.05), (8, 0.2)]}, 0: {"dw": [(8, 0.3)]}}
    table = compare.runs_table(results, curves)
    assert "| FCOS | 0 | 10.0 | 10.0 | 10.0 | 10.0 | 10.0 | n/a | - |" in table  # seed 0 kept no curve
    assert "| FCOS | 1 | 20.0 | 20.0 | 20.0 | 20.0 | 20.0 | n/a | 4: 5.0, 8: 20.0 |" in table
    assert "| DW | 0 | 30.0 |" in table and table.index("| FCOS | 1 |") < table.index("| DW | 0 |")


def test_compare_tool_tabulate_prints_both_tables(tmp_path):
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    folder = _saved_run(tmp_path / "a", compare.default_budget(), {"0": [row]})
    proc = run_tool("compare.py", "--tabulate", folder, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 | 30.0 | - | 50.0 |" in proc.stdout and "| DW | 0 | 30.0 | 50.0 | 20.0 |" in proc.stdout
    missing = run_tool("compare.py", "--tabulate", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "no results.json" in missing.stderr


def test_run_seeds_writes_the_seeds_table_and_every_seeds_curves(tmp_path, monkeypatch):
    budget = compare.default_budget()

    def fake_run(seed_dir, methods, budget_, seed, *args):
        rows = [{"method": "dw", "label": "DW", "ok": True, "AP": 0.1 * (seed + 1), "AP50": 0.5, "AP75": 0.2,
                 "sec_per_iter": 1.0}]
        os.makedirs(seed_dir)
        with open(os.path.join(seed_dir, "results.json"), "w") as f:
            json.dump({"budget": budget, "seed": seed, "rows": rows,
                       "curves": {"dw": {"loss": [], "evals": [[1, [0.05 * (seed + 1)] + [0.0] * 11]]}}}, f)
        return rows

    monkeypatch.setattr(compare, "run_comparison", fake_run)
    results = compare.run_seeds(str(tmp_path / "out"), "dw", None, seeds=(0, 1), dataset_dir=str(tmp_path / "d"))
    assert sorted(results) == [0, 1]
    assert "| DW | 10.0 | 20.0 | 15.0 | 10.0 |" in (tmp_path / "out" / "results.md").read_text()
    assert compare.collect_curves([str(tmp_path / "out")]) == {0: {"dw": [(2, 0.05)]}, 1: {"dw": [(2, 0.1)]}}
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_tool_tabulate_plot_draws_the_runs_curves_and_needs_tabulate(tmp_path):
    budget = compare.default_budget()
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(
        {"budget": budget, "seed": 0, "rows": [row],
         "curves": {"dw": {"loss": [], "evals": [[3, [0.1] + [0.0] * 11], [7, [0.3] + [0.0] * 11]]}}}))
    png = tmp_path / "ap.png"
    proc = run_tool("compare.py", "--tabulate", str(folder), "--plot", str(png), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "| DW | 0 | 30.0 |" in proc.stdout
    alone = run_tool("compare.py", "--plot", str(tmp_path / "b.png"), cwd=tmp_path)
    assert alone.returncode == 2 and "--plot" in alone.stderr and "--tabulate" in alone.stderr
    assert not (tmp_path / "b.png").exists()


def test_parse_sweep_splits_labels_and_names_a_bad_item():
    assert compare.parse_sweep(["1x=a,b", "3x=c"]) == [("1x", ["a", "b"]), ("3x", ["c"])]
    for bad in (["1x"], ["=a"], ["1x="], ["1x=a", "1x=b"], []):
        with pytest.raises(ValueError, match="--sweep"):
            compare.parse_sweep(bad)


def test_sweep_table_puts_each_budget_in_a_column_with_mean_and_seeds():
    row = lambda method, ap: {"method": method, "label": method.upper(), "ok": True, "AP": ap}
    b1 = {0: [row("fcos", 0.1)], 1: [row("fcos", 0.2)]}
    b3 = {0: [row("dw", 0.4), row("fcos", 0.3)]}
    table = compare.sweep_table([("1x", b1), ("3x", b3)])
    assert "| method | 1x: AP mean (per seed) | 3x: AP mean (per seed) |" in table
    assert "| FCOS | 15.0 (s0 10.0 / s1 20.0) | 30.0 (s0 30.0) |" in table
    assert "| DW | - | 40.0 (s0 40.0) |" in table and table.index("| FCOS") < table.index("| DW")


def test_compare_tool_sweep_reads_dirs_per_budget_and_rejects_a_bad_item(tmp_path):
    row = {"method": "dw", "label": "DW", "ok": True, "AP": 0.3, "AP50": 0.5, "AP75": 0.2, "sec_per_iter": 1.0}
    budget = compare.default_budget()
    a = _saved_run(tmp_path / "a", budget, {"0": [row]})
    b = _saved_run(tmp_path / "b", dict(budget, train_images=576), {"1": [dict(row, AP=0.5)]})
    proc = run_tool("compare.py", "--sweep", f"1x={a}", f"3x={b}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| DW | 30.0 (s0 30.0) | 50.0 (s1 50.0) |" in proc.stdout
    bad = run_tool("compare.py", "--sweep", "1x", cwd=tmp_path)
    assert bad.returncode == 2 and "LABEL=DIR" in bad.stderr
