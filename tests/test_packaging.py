"""Packaging: one version (ppassign/_version.py, read by pyproject.toml), a wheel that holds the ppassign package
and its license only, and a CI script that runs the README's `make test` and the suite on Python 3.13."""
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

import ppassign

try:
    import tomllib
except ImportError:  # Python < 3.11: pip's vendored copy of the same parser
    from pip._vendor import tomli as tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a wheel build needs from the checkout (pyproject.toml names README.md and LICENSE).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "ppassign")


def _pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `pip wheel` builds from a copy of the checkout (the build writes nothing into the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp), str(source)],
                   check=True, capture_output=True)
    (path,) = tmp.glob("ppassign-*.whl")
    return path


def test_pyproject_reads_the_version_from_version_file():
    project = _pyproject()
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ppassign._version.__version__"}


def test_no_setup_py_beside_pyproject():
    assert not os.path.exists(os.path.join(REPO, "setup.py"))


def test_wheel_version_equals_ppassign_version(wheel):
    assert wheel.name.startswith(f"ppassign-{ppassign.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(f"ppassign-{ppassign.__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {ppassign.__version__}\n" in metadata


def test_wheel_holds_the_ppassign_package_and_license_only(wheel):
    dist_info = f"ppassign-{ppassign.__version__}.dist-info/"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    outside = [n for n in names if not n.startswith(("ppassign/", dist_info))]
    assert outside == []
    package = sorted(os.path.relpath(os.path.join(d, f), REPO).replace(os.sep, "/")
                     for d, _, files in os.walk(os.path.join(REPO, "ppassign")) for f in files if f.endswith(".py"))
    assert sorted(n for n in names if n.startswith("ppassign/")) == package
    assert dist_info + "licenses/LICENSE" in names


def test_wheel_license_is_the_apache_2_text(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"ppassign-{ppassign.__version__}.dist-info/licenses/LICENSE").decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def _fake_make(tmp_path):
    """A `make` that appends its arguments (one call per line) to calls.txt; returns (bin folder, calls file)."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return str(fake.parent), calls


def _run_ci(tmp_path, **env):
    folder, calls = _fake_make(tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHON313"}
    environ.update(env, PATH=folder + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", os.path.join(REPO, ".ci", "run")], env=environ, capture_output=True, text=True)
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_ci_runs_make_test_then_the_suite_on_python_313(tmp_path):
    proc, calls = _run_ci(tmp_path)
    if proc.returncode == 2 and "no Python 3.13" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "test"
    target, python, venv = calls[1].split(" ")
    assert (target, venv) == ("test", "VENV=.venv313")
    version = subprocess.run([python.split("=", 1)[1], "--version"], capture_output=True, text=True).stdout
    assert version.startswith("Python 3.13.")
    assert len(calls) == 2


def test_ci_fails_without_python_313(tmp_path):
    proc, calls = _run_ci(tmp_path, PYTHON313=str(tmp_path / "missing" / "python"))
    assert proc.returncode == 2
    assert "no Python 3.13 interpreter" in proc.stderr
    assert calls == []
