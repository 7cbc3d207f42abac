"""Load a ppdet YAML config the way every tool does: ``_BASE_`` lists, ``-o key=value`` overrides, dataset
sections, module names checked before anything is built."""
import contextlib
import copy
import os
import re

import yaml

from .. import compat, plugin
from ..data import SyntheticCOCODataSet
from . import checks
from .common import PipelineError, first_line, warn


# A number in exponent notation ("1e-3", "5E4", "1.0e2"): a float in YAML 1.2, a string in YAML 1.1 (PyYAML),
# whose float needs a decimal point and a signed exponent.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_FLOAT_TAG = "tag:yaml.org,2002:float"
_FLOAT_FIRST = list("-+.0123456789")


class _OverrideLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading exponent-notation numbers as floats."""


_OverrideLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, _FLOAT_FIRST)


def parse_override_value(text):
    """An override's value as YAML reads it, except that "1e-3" is the number 0.001, not a string ("'1e-3'" is
    the string)."""
    return yaml.load(text, Loader=_OverrideLoader)


@contextlib.contextmanager
def exponent_floats_in_ppdet_yaml():
    """While inside, `yaml.Loader` (the loader ppdet's load_config uses) reads ``base_lr: 1e-3`` as 0.001, as
    YAML 1.2 does, instead of the string "1e-3" that reaches the optimizer; restored on leaving, so code that
    imports ppassign keeps PyYAML's behaviour."""
    saved = yaml.Loader.__dict__.get("yaml_implicit_resolvers")
    saved = {first: list(resolvers) for first, resolvers in saved.items()} if saved is not None else None
    yaml.Loader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, _FLOAT_FIRST)
    try:
        yield
    finally:
        if saved is None:
            del yaml.Loader.yaml_implicit_resolvers
        else:
            yaml.Loader.yaml_implicit_resolvers = saved


def parse_overrides(items):
    """``["a.b=1", "c=[1, 2]", "lr=1e-3"]`` -> ``[(["a", "b"], 1), (["c"], [1, 2]), (["lr"], 0.001)]`` (values
    parsed as YAML, `parse_override_value`)."""
    parsed = []
    for item in items or ():
        if "=" not in item:
            raise PipelineError(f"-o override must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed.append((key.strip().split("."), parse_override_value(value)))
        except yaml.YAMLError:
            raise PipelineError(f"-o override {item!r}: value is not valid YAML") from None
    return parsed


def _set_path(cfg, keys, value):
    """Set cfg[k0][k1]... = value; dataset objects (built by YAML tags) get attributes set instead."""
    target = cfg
    for i, key in enumerate(keys[:-1]):
        if isinstance(target, dict):
            has_default = getattr(target, "has_default", lambda k: False)(key)
            child = target[key] if key in target or has_default else None
            if isinstance(child, dict) and key not in target:  # a module's default dict: override a copy
                child = target[key] = copy.deepcopy(child)
        else:
            child = getattr(target, key, None)
        if child is None:
            child = {}
            if isinstance(target, dict):
                target[key] = child
            else:
                raise PipelineError(f"-o {'.'.join(keys)}: {'.'.join(keys[:i + 1])} does not exist")
        target = child
    if isinstance(target, dict):
        target[keys[-1]] = value
    else:
        setattr(target, keys[-1], value)


_MODULE_SCHEMAS = {}


def _reset_workspace():
    """Forget a previously loaded config; ppdet keeps one global config, where registered modules stay.

    A config's dataset objects replace ppdet's registered ``TrainDataset``/``EvalDataset``/... entries; those
    are restored from the copy kept here, and every module's YAML settings are cleared.
    """
    from ppdet.core.workspace import global_config
    for key, schema in _MODULE_SCHEMAS.items():
        if not hasattr(global_config.get(key), "pymodule"):
            global_config[key] = schema
    for key in list(global_config):
        value = global_config[key]
        if hasattr(value, "pymodule"):
            _MODULE_SCHEMAS[key] = value
            dict.clear(value)
        else:
            del global_config[key]


def load_config(path, overrides=(), override_ppdet_assigners=False, epochs=None, check_schedule=False):
    """Load a ppdet YAML config (with ``_BASE_``), apply ``-o`` overrides, return ppdet's global config.

    `epochs` (``--epochs N``) sets ``epoch`` and scales the rest of the schedule with it
    (`checks.scale_schedule`); `check_schedule` warns when ``-o epoch=N`` leaves a schedule made for the
    config's own length (`checks.schedule_warnings`). Raises PipelineError for a missing/unreadable/invalid
    file, an unknown ``!Tag`` or a missing architecture.
    """
    from ppdet.core.workspace import load_config as ppdet_load_config
    if not path:
        raise PipelineError("no config given: pass -c <config.yml>")
    if not os.path.isfile(path):
        raise PipelineError(f"config file not found: {path}")
    if os.path.splitext(path)[1] not in (".yml", ".yaml"):
        raise PipelineError(f"config must be a .yml/.yaml file, got {path}")
    if override_ppdet_assigners:
        plugin.use_ppassign_for_ppdet_names()
    _reset_workspace()
    try:
        with exponent_floats_in_ppdet_yaml():
            cfg = ppdet_load_config(path)
    except yaml.constructor.ConstructorError as e:
        raise PipelineError(f"config {path}: unknown module name ({first_line(e.problem)})") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"config {path} is not valid YAML: {first_line(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"config {path} cannot be read: {first_line(e)}") from None
    except Exception as e:  # ppdet asserts/raises on bad _BASE_ entries, non-dict documents, ...
        raise PipelineError(f"config {path} is invalid: {type(e).__name__}: {first_line(e)}") from None
    parsed = parse_overrides(overrides)
    written = checks.schedule_values(cfg, model_modules(cfg)) if check_schedule or epochs else None
    for keys, value in parsed:
        _set_path(cfg, keys, value)
    _build_named_datasets(cfg, path)
    arch = cfg.get("architecture")
    if not arch:
        raise PipelineError(f"config {path} has no 'architecture' key (the model to build)")
    _check_module_names(cfg, path)
    overridden = {".".join(keys) for keys, _ in parsed}
    if epochs is not None:
        if "epoch" in overridden:
            raise PipelineError("epoch: give the length once, --epochs N (scales the schedule with it) or "
                                "-o epoch=N (keeps the schedule as written)")
        changes = checks.scale_schedule(cfg, epochs, model_modules(cfg))
        if changes:
            print(f"ppassign: --epochs {epochs} scales the config's {changes[0][1]}-epoch schedule: "
                  + ", ".join(f"{key} {old} -> {new}" for key, old, new in changes), flush=True)
    elif check_schedule:
        for message in checks.schedule_warnings(written, checks.schedule_values(cfg, model_modules(cfg)),
                                                overridden):
            warn(message)
    compat.apply()
    return cfg


def _build_named_datasets(cfg, path):
    """Turn ``XxxDataset: {name: COCODataSet, ...}`` sections into dataset objects.

    ppdet accepts this form (through its CommonDataset wrappers) besides the ``!COCODataSet`` tag form; making
    objects of both lets the pipeline treat datasets alike (``-o`` overrides, ``get_anno`` for label names)
    and reports an unknown dataset name before anything is built.
    """
    from ppdet.core.config.schema import SchemaDict
    from ppdet.core.workspace import global_config
    for key in [k for k in cfg if k.endswith("Dataset")]:
        section = cfg[key]
        if not isinstance(section, dict) or "name" not in section:
            continue  # a dataset object built by a YAML tag (!COCODataSet), or no such section
        name = section["name"]
        if not isinstance(global_config.get(name), SchemaDict):
            raise PipelineError(f"config {path}: unknown module name {name!r} ({key})")
        kwargs = {k: v for k, v in dict(section).items() if k != "name"}
        try:
            cfg[key] = getattr(global_config[name].pymodule, name)(**kwargs)
        except TypeError as e:
            raise PipelineError(f"config {path}: {key} ({name}): {first_line(e)}") from None


def _known(name):
    from ppdet.core.config.schema import SchemaDict
    from ppdet.core.workspace import global_config
    return isinstance(global_config.get(name), SchemaDict)


def _module_children(name):
    """[(key, module name)] of the sub-modules a registered module's config names: injected keys and keys whose
    default names a registered module (any name there is meant as a module), and any other key whose value
    names a registered module (e.g. ``TOOD: {head: TOODHead}``, built by the architecture's from_config)."""
    from ppdet.core.workspace import global_config
    schema = global_config[name]
    keys = set(getattr(schema, "inject", None) or ())
    for key, value in schema.schema.items():
        default = value.default if value.has_default() else None
        if isinstance(default, str) and _known(default):
            keys.add(key)
    children = []
    for key in sorted(set(schema.schema) | set(dict(schema)) | keys):
        try:
            value = schema[key]
        except KeyError:
            continue
        child = value.get("name") if isinstance(value, dict) else value
        if isinstance(child, str) and (key in keys or _known(child)):
            children.append((key, child))
    return children


def _walk_modules(cfg, on_unknown):
    """Registered module names the model is built from (the architecture and what it names, recursively);
    `on_unknown(name, where)` is called for a name that is not registered (and its subtree skipped)."""
    seen = []

    def visit(name):
        if name in seen:
            return
        seen.append(name)
        for key, child in _module_children(name):
            if not _known(child):
                on_unknown(child, f"{name}.{key}")
            else:
                visit(child)

    arch = cfg.get("architecture")
    if not isinstance(arch, str) or not _known(arch):
        on_unknown(arch, "architecture")
        return seen
    visit(arch)
    return seen


def model_modules(cfg):
    """Names of the registered modules the config's model is built from (unknown names left out)."""
    return _walk_modules(cfg, lambda name, where: None)


def _check_module_names(cfg, path):
    """Raise PipelineError naming the first module the config asks for that ppdet does not know."""
    def unknown(name, where):
        raise PipelineError(f"config {path}: unknown module name {name!r} ({where})")

    _walk_modules(cfg, unknown)


def build_model(cfg):
    """create(cfg.architecture), with config mistakes turned into PipelineError."""
    from ppdet.core.workspace import create
    try:
        return create(cfg.architecture)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise PipelineError(f"cannot build {cfg.architecture} from the config: {type(e).__name__}: "
                            f"{first_line(e)}") from None


def sync_test_categories(cfg):
    """Give TestDataset (where export and infer read the class names) an annotation file: its own, else
    EvalDataset's.

    A config without TestDataset gets an ImageFolder. A TestDataset.anno_path naming a file that does not exist
    is a PipelineError, except with the synthetic EvalDataset (the synthetic base config's TestDataset names the
    default synthetic split, which configs that put the synthetic data elsewhere inherit; every split has the
    same classes), whose annotation file is then used.
    """
    from ppdet.data.source.dataset import ImageFolder
    test, evalset = cfg.get("TestDataset"), cfg.get("EvalDataset")
    if test is None:
        test = cfg["TestDataset"] = ImageFolder()
    current = test.get_anno() if hasattr(test, "get_anno") else None
    if current and os.path.isfile(current):
        return
    if current and not isinstance(evalset, SyntheticCOCODataSet):
        raise PipelineError(f"TestDataset.anno_path: file not found: {current} (export and infer read the class "
                            f"names from it: point it at the training annotation file)")
    if evalset is None or not hasattr(evalset, "get_anno"):
        return
    anno = evalset.get_anno()
    if anno and os.path.isfile(anno):
        test.dataset_dir, test.anno_path = "", os.path.abspath(anno)


# infer_cfg.yml key (beside ppdet's label_list) under which export writes the dataset's category ids.
CATEGORY_IDS_KEY = "category_ids"


def categories(cfg):
    """(category ids, names) of the model's classes in class-index order, from TestDataset's annotations.

    ppdet maps a COCO file's categories, in file order, to class indices 0..C-1; without an annotation file it
    uses its default categories for the metric (COCO's 80).
    """
    found = checks.dataset_categories(cfg, "TestDataset")
    if found:
        _, cats = found
        return [int(i) for i, _ in cats], [name for _, name in cats]
    from ppdet.data.source.category import get_categories
    clsid2catid, catid2name = get_categories(cfg.metric, None)
    ids = [int(clsid2catid[i]) for i in sorted(clsid2catid)]
    return ids, [str(catid2name[i]) for i in ids]
