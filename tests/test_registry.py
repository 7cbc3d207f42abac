"""ppassign.registry: names in ppdet's workspace, repeated import, the explicit opt-in override."""
import importlib

import pytest
from ppdet.core.workspace import create, global_config
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS

import ppassign
from ppassign import registry


def test_assigners_are_registered_under_ppassign_names():
    atss = create("PPAssignATSSAssigner")
    tal = create("PPAssignTaskAlignedAssigner")
    assert isinstance(atss, ppassign.ATSSAssigner)
    assert isinstance(tal, ppassign.TaskAlignedAssigner)


def test_import_twice_is_safe():
    importlib.reload(registry)
    registry.register_all()
    assert isinstance(create("PPAssignATSSAssigner"), ppassign.ATSSAssigner)


def test_ppdet_names_keep_ppdet_classes_by_default():
    assert type(create("ATSSAssigner")) is PpdetATSS


def test_opt_in_override_then_restore():
    try:
        registry.use_ppassign_for_ppdet_names()
        assert isinstance(create("ATSSAssigner"), ppassign.ATSSAssigner)
        assert isinstance(create("TaskAlignedAssigner"), ppassign.TaskAlignedAssigner)
    finally:
        registry.restore_ppdet_names()
    assert type(create("ATSSAssigner")) is PpdetATSS


def test_override_rejects_unknown_names():
    with pytest.raises(ValueError, match="names must be among"):
        registry.use_ppassign_for_ppdet_names(["FCOSHead"])


def test_yaml_arguments_reach_our_assigner():
    schema = global_config["PPAssignATSSAssigner"]
    saved = dict(schema)
    schema["topk"] = 5
    try:
        assert create("PPAssignATSSAssigner").topk == 5
    finally:
        schema.clear()
        schema.update(saved)
    assert create("PPAssignATSSAssigner").topk == 9
