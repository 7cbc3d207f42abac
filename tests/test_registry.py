"""ppassign.registry: a class under a YAML name, a name ppdet already has, override and restore."""
import pytest
from ppdet.core.workspace import create, global_config
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS

from ppassign import registry
from ppassign.assigners import TopKAssigner


def test_register_builds_the_class_under_its_yaml_name():
    name = "PPAssignTestOnlyTopK"
    try:
        registry.register(name, TopKAssigner)
        built = create(name)
        assert isinstance(built, TopKAssigner) and type(built).__name__ == name
    finally:
        global_config.pop(name, None)


def test_register_twice_is_a_no_op():
    schema = global_config["PPAssignTopKAssigner"]
    registry.register("PPAssignTopKAssigner", TopKAssigner)
    assert global_config["PPAssignTopKAssigner"] is schema


def test_register_refuses_a_name_ppdet_has():
    with pytest.raises(ValueError, match="ppdet already has a module named 'ATSSAssigner'"):
        registry.register("ATSSAssigner", TopKAssigner)


def test_override_then_restore_gives_the_name_back():
    try:
        registry.override("ATSSAssigner", TopKAssigner)
        assert registry.overridden() == ["ATSSAssigner"]
        assert isinstance(create("ATSSAssigner"), TopKAssigner)
    finally:
        registry.restore()
    assert registry.overridden() == []
    assert type(create("ATSSAssigner")) is PpdetATSS
