"""What the tools check before anything is built or written: the datasets' files, ``num_classes`` against the
annotations' categories, and the training schedule against ``epoch`` (with ``--epochs N`` scaling it).

Each mistake is a PipelineError naming the config key and what is wrong (the tools print it as one line and exit
with status 2); a setting that runs but probably not as meant is a one-line warning.
"""
import copy
import json
import os

from ..data import SyntheticCOCODataSet
from ..data.synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from .common import PipelineError, warn

# Annotation files above this size are scanned for their "categories" list instead of parsed whole (COCO's
# instances_train2017.json is 448 MB; its categories take 6 KB at its end).
FULL_PARSE_BYTES = 32 << 20
SCAN_CHUNK_BYTES = 8 << 20
# Category names quoted in a message before "... (N in all)".
NAMES_SHOWN = 8
# Heads that train with a static assigner for their first `static_assigner_epoch` epochs, then a dynamic one.
STATIC_ASSIGNER_KEY = "static_assigner_epoch"


# ------------------------------------------------------------------------------------------------ datasets

def _joined(dataset_dir, path):
    return os.path.join(dataset_dir, path) if dataset_dir else path


def check_dataset_files(cfg, key):
    """PipelineError naming ``<key>.dataset_dir`` / ``.anno_path`` / ``.image_dir`` when what it names is missing.

    ppassign's SyntheticCOCODataSet writes its files on first use, so it is always fine. An ImageFolder
    (TestDataset) reads images given on the command line: only its annotation file, if set, must exist.
    """
    from ppdet.data.source.dataset import ImageFolder
    dataset = cfg.get(key)
    if dataset is None:
        raise PipelineError(f"{key}: the config has none (a dataset section is needed for this run)")
    if isinstance(dataset, SyntheticCOCODataSet):
        return
    anno = dataset.get_anno() if hasattr(dataset, "get_anno") else None
    if isinstance(dataset, ImageFolder):
        if anno and not os.path.isfile(anno):
            raise PipelineError(f"{key}.anno_path: file not found: {anno}")
        return
    dataset_dir = getattr(dataset, "dataset_dir", "") or ""
    if dataset_dir and not os.path.isdir(dataset_dir):
        raise PipelineError(f"{key}.dataset_dir: folder not found: {dataset_dir}")
    if not getattr(dataset, "anno_path", None):
        raise PipelineError(f"{key}.anno_path: not set (the annotation file, relative to dataset_dir)")
    if not os.path.isfile(anno):
        raise PipelineError(f"{key}.anno_path: file not found: {anno}")
    image_dir = _joined(dataset_dir, getattr(dataset, "image_dir", "") or "")
    if image_dir and not os.path.isdir(image_dir):
        raise PipelineError(f"{key}.image_dir: folder not found: {image_dir}")


# ---------------------------------------------------------------------------------------------- categories

def _scan_categories(path):
    """The JSON text of the last top-level-looking ``"categories": [...]`` in a large file, or None."""
    marker = b'"categories"'
    with open(path, "rb") as f:
        offset, tail, found = 0, b"", None
        while True:
            chunk = f.read(SCAN_CHUNK_BYTES)
            if not chunk:
                break
            block = tail + chunk
            index = block.rfind(marker)
            if index >= 0:
                found = offset - len(tail) + index
            tail = block[-len(marker):]
            offset += len(chunk)
        if found is None:
            return None
        f.seek(found + len(marker))
        return f.read(SCAN_CHUNK_BYTES).decode("utf-8", errors="replace")


def read_categories(path, key):
    """[(category id, name)] of a COCO annotation file, in file order (the order ppdet maps to class indices).

    PipelineError naming `key` when the file is not a COCO annotation file with a categories list.
    """
    def bad(reason):
        return PipelineError(f"{key}: {path} is not a COCO annotation file ({reason})")

    categories = None
    try:
        if os.path.getsize(path) > FULL_PARSE_BYTES:
            text = _scan_categories(path)
            if text is not None:
                text = text.lstrip()
                if text.startswith(":"):
                    try:
                        categories = json.JSONDecoder().raw_decode(text[1:].lstrip())[0]
                    except ValueError:
                        categories = None
        if categories is None:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise bad("not a JSON object")
            categories = data.get("categories")
    except OSError as e:
        raise PipelineError(f"{key}: {path} cannot be read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"not valid JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(categories, list) or not categories:
        raise bad("no categories list")
    if not all(isinstance(c, dict) and "id" in c for c in categories):
        raise bad("a category without an id")
    return [(c["id"], str(c.get("name", c["id"]))) for c in categories]


def dataset_categories(cfg, key):
    """(annotation file, [(id, name)]) of the dataset under `key`, or None when it has no annotation file.

    The synthetic dataset's categories are its generator's classes (ids 1..5), known without writing it.
    """
    dataset = cfg.get(key)
    if dataset is None:
        return None
    if isinstance(dataset, SyntheticCOCODataSet):
        anno = _joined(dataset.dataset_dir, dataset.anno_path)
        return anno, [(i + 1, name) for i, name in enumerate(SYNTHETIC_CLASS_NAMES)]
    anno = dataset.get_anno() if hasattr(dataset, "get_anno") else None
    if not anno or not os.path.isfile(anno) or not anno.endswith(".json"):
        return None
    return anno, read_categories(anno, f"{key}.anno_path")


def _names(categories):
    names = [name for _, name in categories]
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > NAMES_SHOWN else "")


def check_num_classes(cfg, keys):
    """Compare the config's ``num_classes`` with the categories of each dataset in `keys` (those that have an
    annotation file), and the datasets' categories with each other.

    Fewer classes than categories is a PipelineError (labels would fall outside the classifier); more is a
    warning (the extra classes never get a label). Returns the categories of the first dataset, or None.
    """
    found = [(key,) + found for key in keys for found in [dataset_categories(cfg, key)] if found]
    if not found:
        return None
    first_key, first_file, first = found[0]
    for key, anno, categories in found[1:]:
        if [i for i, _ in categories] != [i for i, _ in first]:
            raise PipelineError(f"{key}.anno_path: {anno} has other categories ({_names(categories)}) than "
                                f"{first_key}'s {first_file} ({_names(first)}): class indices would not match")
    num_classes = cfg.get("num_classes")
    if num_classes is None:
        return first
    count = len(first)
    where = f"the {count} categories of {first_key}.anno_path {first_file} ({_names(first)})"
    if int(num_classes) < count:
        raise PipelineError(f"num_classes: {num_classes} is smaller than {where}; set num_classes: {count}")
    if int(num_classes) > count:
        warn(f"num_classes: {num_classes} is larger than {where}; classes {count}..{int(num_classes) - 1} "
             f"never get a label")
    return first


# ----------------------------------------------------------------------------------------------- schedule

def _name(item):
    return item.get("name") if isinstance(item, dict) else type(item).__name__


def _get(item, field):
    return item.get(field) if isinstance(item, dict) else getattr(item, field, None)


def _set(item, field, value):
    if isinstance(item, dict):
        item[field] = value
    else:
        setattr(item, field, value)


def _schedulers(cfg):
    lr = cfg.get("LearningRate")
    if lr is None:
        return []
    try:
        return list(lr["schedulers"] or ())
    except KeyError:
        return []


def _static_assigner_heads(cfg, modules):
    """Names among `modules` whose ppdet schema has a ``static_assigner_epoch`` (PPYOLOEHead, TOODHead, ...)."""
    from ppdet.core.workspace import global_config
    return [name for name in modules
            if STATIC_ASSIGNER_KEY in getattr(global_config.get(name), "schema", {})]


def schedule_values(cfg, modules):
    """{config key: value} of everything that counts epochs: ``epoch``, the LR schedulers' epoch settings and
    warm-up, and ``static_assigner_epoch`` of the heads among `modules` (the model's module names)."""
    values = {"epoch": cfg.get("epoch")}
    for item in _schedulers(cfg):
        name = _name(item)
        for field in ("max_epochs", "last_plateau_epochs", "milestones", "epochs", "steps"):
            value = _get(item, field)
            if value is not None and not (field == "steps" and _get(item, "epochs") is not None):
                values[f"LearningRate.{name}.{field}"] = copy.copy(value)
    for head in _static_assigner_heads(cfg, modules):
        values[f"{head}.{STATIC_ASSIGNER_KEY}"] = cfg[head][STATIC_ASSIGNER_KEY]
    return values


def _scaled(value, factor, least):
    return max(least, int(value * factor + 0.5))


def scale_schedule(cfg, epochs, modules):
    """Set ``epoch`` to `epochs` and scale everything else that counts epochs (or warm-up steps) by the same
    factor, so that a shortened run keeps the config's recipe: cosine ``max_epochs`` (and its plateau),
    piecewise ``milestones``, the warm-up's ``epochs`` / ``steps``, and each head's ``static_assigner_epoch``.

    Returns [(key, old, new)] of what changed.
    """
    if int(epochs) < 1:
        raise PipelineError(f"--epochs must be at least 1, got {epochs}")
    old_epoch = cfg.get("epoch")
    if not old_epoch:
        raise PipelineError("--epochs: the config has no epoch key to scale from")
    factor = int(epochs) / float(old_epoch)
    changes = [("epoch", old_epoch, int(epochs))]
    cfg["epoch"] = int(epochs)
    lr = cfg.get("LearningRate")
    if lr is not None and _schedulers(cfg):
        lr["schedulers"] = schedulers = copy.deepcopy(_schedulers(cfg))  # never a module default's own list
        for item in schedulers:
            name = _name(item)
            fields = {"max_epochs": 1, "last_plateau_epochs": 0, "epochs": 0}
            if _get(item, "epochs") is None:
                fields["steps"] = 1
            for field, least in fields.items():
                value = _get(item, field)
                if value is not None:
                    new = _scaled(value, factor, least)
                    _set(item, field, new)
                    changes.append((f"LearningRate.{name}.{field}", value, new))
            milestones = _get(item, "milestones")
            if milestones:
                new = [_scaled(m, factor, 1) for m in milestones]
                _set(item, "milestones", new)
                changes.append((f"LearningRate.{name}.milestones", list(milestones), new))
    for head in _static_assigner_heads(cfg, modules):
        value = cfg[head][STATIC_ASSIGNER_KEY]
        new = _scaled(value, factor, 0)
        cfg[head][STATIC_ASSIGNER_KEY] = new
        changes.append((f"{head}.{STATIC_ASSIGNER_KEY}", value, new))
    return [c for c in changes if c[1] != c[2]]


def schedule_warnings(written, final, overridden):
    """One-line warnings when ``-o epoch=N`` changed the length but left settings that count the config's
    written epochs: {key: value} `written` (before ``-o``) and `final` (after), `overridden` the ``-o`` keys."""
    epoch, old = final.get("epoch"), written.get("epoch")
    if "epoch" not in overridden or not epoch or epoch == old:
        return []
    kept = {key: value for key, value in final.items()
            if key != "epoch" and key in written and written[key] == value
            and not any(key == o or key.startswith(o + ".") for o in overridden)}
    problems = []
    for key, value in kept.items():
        field = key.rsplit(".", 1)[-1]
        if field == "max_epochs" and value != epoch:
            problems.append(f"{key} {value} (the learning rate "
                            + ("is cut before its decay ends)" if value > epoch
                               else f"stays at its minimum after epoch {value})"))
        elif field == "milestones" and any(m >= epoch for m in value):
            problems.append(f"{key} {value} (a decay at or after epoch {epoch} never happens)")
        elif field == "epochs" and value >= epoch:
            problems.append(f"{key} {value} (the warm-up lasts the whole run)")
        elif field == STATIC_ASSIGNER_KEY and value < old and value >= epoch:
            problems.append(f"{key} {value} (the head's dynamic assigner never runs)")
    if not problems:
        return []
    return [f"epoch: {epoch} (from -o) leaves the schedule of the config's {old} epochs: {'; '.join(problems)}; "
            f"pass --epochs {epoch} instead of -o epoch={epoch} to scale them with it"]
