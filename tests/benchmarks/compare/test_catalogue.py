"""benchmarks.compare: the method catalogue, its groups and the configs it names."""
import os

import pytest
import yaml

import ppassign  # noqa: F401
from ppassign.engine.config import load_config
from benchmarks import compare


def test_compare_rejects_unknown_method_and_bad_budget():
    with pytest.raises(ValueError, match="unknown method 'retina'"):
        compare.parse_methods("fcos,retina")
    budget = compare.default_budget()
    budget["epochs"] = 0
    with pytest.raises(ValueError, match="epochs"):
        compare.check_budget(budget)


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
