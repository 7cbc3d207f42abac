"""benchmarks.compare.catalogue: the methods, variants and groups, and the configs they name."""
import os
import re

import pytest
import yaml

import ppassign  # noqa: F401
from ppassign.engine.config import load_config
from benchmarks.compare import catalogue

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_parse_methods_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'retina'"):
        catalogue.parse_methods("fcos,retina")


def test_compare_configs_share_backbone_neck_optimizer_and_data():
    """Every method of benchmarks/configs differs only in its head (and FCOS in its target op)."""
    shared = ("CSPResNet", "FPN", "OptimizerBuilder", "depth_mult", "width_mult", "epoch", "EvalReader")
    seen = {}
    for name, (filename, _) in catalogue.METHODS.items():
        if name in catalogue.VARIANTS:
            continue
        cfg = load_config(os.path.join(catalogue.CONFIG_DIR, filename))
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
    assert catalogue.parse_methods("all") == ["fcos", "atss_only", "tal_only", "autoassign", "dw_norefine", "dw"]
    assert catalogue.parse_methods("retinanet") == ["retina_maxiou", "retina_topk", "retina_atss",
                                                    "retina_fcos_rule", "retina_noisy_anchor", "retina_hambox"]
    assert catalogue.parse_methods("fcos,retinanet9,fcos")[:2] == ["fcos", "retina9_maxiou"]
    assert len(catalogue.parse_methods("retinanet,retinanet9")) == 12


def test_retinanet_compare_configs_differ_only_in_assigner_and_anchors():
    for name in catalogue.GROUPS["retinanet"] + catalogue.GROUPS["retinanet9"]:
        cfg = load_config(os.path.join(catalogue.CONFIG_DIR, catalogue.METHODS[name][0]))
        head = cfg["PPAssignRetinaHead"]
        anchors = head["anchor_generator"]
        assert cfg.architecture == "RetinaNet"
        assert head["bbox_assigner"] == {"maxiou": "PPAssignMaxIoUAssigner", "topk": "PPAssignTopKAssigner",
                                         "atss": "PPAssignATSSRetinaAssigner", "fcos_rule": "PPAssignFCOSRuleAssigner",
                                         "noisy_anchor": "PPAssignNoisyAnchorAssigner",
                                         "hambox": "PPAssignHAMBoxAssigner"}[name.split("_", 1)[1]]
        assert anchors["scales_per_octave"] * len(anchors["aspect_ratios"]) == (9 if name.startswith("retina9") else 1)


def test_variant_groups_expand_and_stay_out_of_all():
    assert catalogue.parse_methods("dw_ablation") == ["dw_norefine_posonly", "dw_norefine_negonly"]
    assert "autoassign_sgd" not in catalogue.parse_methods("all")


def _variant_paths(name):
    """(variant config path, its YAML, the method config it extends): a variant names one method file as _BASE_."""
    path = catalogue.config_path(name)
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


@pytest.mark.parametrize("name", sorted(catalogue.VARIANTS))
def test_each_variant_changes_exactly_the_sections_it_names(name):
    path, own, base_path = _variant_paths(name)
    named = set(own) - {"_BASE_", "weights"}
    cfg, _ = _sections(path)
    base, architecture = _sections(base_path)
    changed = {key for key in set(cfg) | set(base) if key != "weights" and cfg.get(key) != base.get(key)}
    assert changed == named
    if catalogue.VARIANTS[name][0] != "setup":  # alignment and ablation rows change one head or rule
        assert named <= {"AutoAssignHead", "DWHead", "PPAssignRetinaHead", "PPAssignATSSRetinaAssigner"}
        assert len(named) == 1


@pytest.mark.parametrize("name", sorted(catalogue.VARIANTS))
def test_each_variant_builds_its_model(name):
    """The switches a variant names exist in the head / neck it configures (a typo would fail here)."""
    from ppassign.engine.config import build_model
    path, own, _ = _variant_paths(name)
    model = build_model(load_config(path))
    head = model.head if hasattr(model, "head") else model.fcos_head  # RetinaNet / FCOS-style architectures
    assigner = getattr(head, "bbox_assigner", None)
    for key, value in own.get(type(assigner).__name__, {}).items():  # the rule's own settings
        assert getattr(assigner, key) == value, key
    for key, value in own.get(type(head).__name__, {}).items():
        if isinstance(value, dict):  # an injected part (a loss): its settings, not its registered name
            part = getattr(head, key)
            assert type(part).__name__ == value["name"], key
            for name_, setting in value.items():
                assert name_ == "name" or getattr(part, name_) == setting, f"{key}.{name_}"
        elif key == "conv_bias":
            assert (head.cls_tower.conv0.bias is not None) == value
        elif key == "fpn_stride":
            assert head.fpn_stride == value and len(model.neck.out_shape) == len(value)
        else:
            assert getattr(head, key) == value, key


def test_configs_are_found_in_the_benchmarks_folder_not_through_the_library():
    """A regular (non-editable) install puts ppassign elsewhere: the configs are located from benchmarks/."""
    assert catalogue.CONFIG_DIR == os.path.join(REPO, "benchmarks", "configs")
    assert not catalogue.CONFIG_DIR.startswith(os.path.dirname(ppassign.__file__))
    for name in catalogue.METHODS:
        assert os.path.isfile(catalogue.config_path(name)), name


def test_methods_listing_has_one_line_per_method_and_group_and_no_variant():
    text = catalogue.methods_listing()
    for name in list(catalogue.METHODS) + list(catalogue.GROUPS):
        listed = [line for line in text.splitlines() if line.split()[:1] == [name]]
        if name in catalogue.VARIANTS or name in catalogue.VARIANT_GROUPS:
            assert listed == [], name
        else:
            assert len(listed) == 1 and len(listed[0].split()) > 2, name


def test_variants_listing_names_every_variant_under_its_group():
    lines = catalogue.variants_listing().splitlines()
    for name, (group, label) in catalogue.VARIANTS.items():
        (row,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
        heading = max(i for i, line in enumerate(lines[:row]) if line.startswith("variants, group "))
        assert lines[heading].startswith(f"variants, group {group}:") and lines[row].endswith(label)


def test_labels_and_descriptions_carry_no_dates():
    text = catalogue.methods_listing() + catalogue.variants_listing() + str(catalogue.METHODS)
    assert not re.search(r"\b(19|20)\d\d-\d\d", text) and "before " not in text
