"""Imports run one way: ops <- assigners <- heads <- engine <- analysis, with compat, registry and data beside
them; all modules import in sorted order in a fresh process."""
import ast
import os
import pkgutil
import subprocess
import sys

import ppassign

PACKAGE_DIR = os.path.dirname(ppassign.__file__)
MODULES = sorted(m.name for m in pkgutil.walk_packages(ppassign.__path__, "ppassign."))
# Part of ppassign -> the parts it may import from (besides itself).
ALLOWED = {
    "_version": set(),
    "compat": set(),
    "registry": set(),
    "data": set(),
    "ops": set(),
    "assigners": {"ops"},
    "heads": {"ops", "assigners"},
    "plugin": {"compat", "registry", "assigners", "heads", "data"},
    "engine": {"compat", "plugin", "registry", "ops", "assigners", "heads", "data"},
    "analysis": {"compat", "ops", "assigners", "heads", "engine", "data"},
}


def _part(module):
    return module.split(".")[1] if module.count(".") else "__init__"


def _ppassign_imports(path, module):
    """The ppassign parts a source file imports (absolute and relative imports, at any depth in the file)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {_part(n) for n in names if n.startswith("ppassign.") and n.count(".")}
    return found


def test_every_part_imports_only_from_the_parts_before_it():
    wrong = []
    for module in MODULES:
        part = _part(module)
        if part not in ALLOWED:
            wrong.append(f"{module}: part {part!r} has no place in the layer list")
            continue
        rel = module.split(".")[1:]
        path = os.path.join(PACKAGE_DIR, *rel) + ".py"
        if not os.path.isfile(path):
            path = os.path.join(PACKAGE_DIR, *rel, "__init__.py")
        for used in _ppassign_imports(path, module) - {part} - ALLOWED[part]:
            wrong.append(f"{module} imports ppassign.{used}")
    assert not wrong, "\n".join(wrong)


def test_all_modules_import_in_sorted_order_in_a_fresh_process():
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_each_part_imports_first_in_a_fresh_process():
    code = "import importlib, sys\nimportlib.import_module(sys.argv[1])\n"
    for part in sorted({m for m in MODULES if m.count(".") == 1}):
        done = subprocess.run([sys.executable, "-c", code, part], capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
        assert done.returncode == 0, f"{part}: {done.stderr[-2000:]}"
