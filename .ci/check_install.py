"""Check that the README's install resolves to wheels only (no source builds) for other Python versions.

    python .ci/check_install.py 3.12 3.13        (what `make check-install` runs; needs the package index)

For each version it runs pip's resolver as that Python would (``pip install --dry-run --only-binary=:all:
--python-version X``, environment markers evaluated for X too: pip itself evaluates them for the running
interpreter) on the README's two install steps: ppassign's wheel with the ``cpu,test`` extras, and
``paddledet==2.6.0`` without its dependencies. Prints what each resolves to; exits 1 when one does not resolve
or needs anything but a wheel.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOWN = ("numpy", "opencv-python", "paddlepaddle", "scikit-learn", "scipy", "pandas", "shapely", "pycocotools",
         "paddledet", "ppassign")
# Run by a child python: pip's resolver with the marker environment of the target version.
RESOLVE = r"""
import sys
from pip._vendor.packaging import markers
version = sys.argv[1]
plain = markers.default_environment
def target_environment():
    env = dict(plain())
    env.update(python_version=version, python_full_version=version + ".0", implementation_version=version + ".0")
    return env
markers.default_environment = target_environment
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def resolve(version, requirement, report, target, no_deps=False):
    """pip's dry-run install of `requirement` for Python `version`; returns (exit status, stderr tail)."""
    args = [sys.executable, "-c", RESOLVE, version, "install", "--dry-run", "--quiet", "--ignore-installed",
            "--only-binary=:all:", "--python-version", version, "--target", target, "--report", report]
    args += ["--no-deps"] if no_deps else []
    proc = subprocess.run(args + [requirement], capture_output=True, text=True)
    tail = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")]
    return proc.returncode, "\n".join(tail[-3:])


def main(versions):
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "source")  # a copy, so that the build leaves nothing in the checkout
        skipped = shutil.ignore_patterns(".*", "build", "output*", "dataset", "log", "*.egg-info")
        shutil.copytree(REPO, source, ignore=skipped)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp, source], check=True,
                       stderr=subprocess.DEVNULL)
        wheel = glob.glob(os.path.join(tmp, "ppassign-*.whl"))[0]
        for version in versions:
            resolved = []
            for requirement, no_deps in ((wheel + "[cpu,test]", False), ("paddledet==2.6.0", True)):
                report = os.path.join(tmp, f"report-{version}.json")
                status, error = resolve(version, requirement, report, os.path.join(tmp, "target"), no_deps)
                if status != 0:
                    print(f"Python {version}: {os.path.basename(requirement)} does not resolve to wheels:\n{error}")
                    failures += 1
                    continue
                with open(report) as f:
                    items = json.load(f)["install"]
                for item in items:
                    name = item["metadata"]["name"].lower()
                    url = item["download_info"]["url"]
                    if not url.endswith(".whl"):
                        print(f"Python {version}: {name} is not a wheel: {url}")
                        failures += 1
                    resolved.append((name, item["metadata"]["version"], os.path.basename(url)))
            shown = [f"{n} {v}" for n, v, _ in sorted(resolved) if n in SHOWN]
            print(f"Python {version}: {len(resolved)} wheels: " + ", ".join(shown))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["3.12", "3.13"]))
