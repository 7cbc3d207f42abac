"""ppassign.plugin: what `import ppassign` registers, the arity it sets, the opt-in override."""
from ppdet.core.workspace import create, global_config
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS

import ppassign
from ppassign import compat, plugin


def test_every_module_is_registered_under_its_yaml_name():
    for name, cls in plugin.MODULES.items():
        built = global_config[name].pymodule.__dict__[name]
        assert issubclass(built, cls), name


def test_assigners_are_built_from_their_ppassign_names():
    assert isinstance(create("PPAssignATSSAssigner"), ppassign.ATSSAssigner)
    assert isinstance(create("PPAssignTaskAlignedAssigner"), ppassign.TaskAlignedAssigner)


def test_install_twice_is_safe():
    plugin.install()
    assert isinstance(create("PPAssignATSSAssigner"), ppassign.ATSSAssigner)


def test_dense_assigners_return_what_the_installed_ppdet_unpacks():
    for cls in plugin.DENSE_ASSIGNERS:
        assert cls.return_mask_positive is compat.ASSIGNER_RETURNS_MASK_POSITIVE
        assert cls(return_mask_positive=not compat.ASSIGNER_RETURNS_MASK_POSITIVE).return_mask_positive \
            is not compat.ASSIGNER_RETURNS_MASK_POSITIVE


def test_ppdet_names_keep_ppdet_classes_by_default():
    assert type(create("ATSSAssigner")) is PpdetATSS


def test_opt_in_override_then_restore():
    try:
        plugin.use_ppassign_for_ppdet_names()
        assert isinstance(create("ATSSAssigner"), ppassign.ATSSAssigner)
        assert isinstance(create("TaskAlignedAssigner"), ppassign.TaskAlignedAssigner)
    finally:
        plugin.restore_ppdet_names()
    assert type(create("ATSSAssigner")) is PpdetATSS


def test_override_rejects_unknown_names():
    import pytest
    with pytest.raises(ValueError, match="names must be among"):
        plugin.use_ppassign_for_ppdet_names(["FCOSHead"])


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
