"""ppassign: modern label assignment for PaddleDetection (ppdet) on Paddle 3.

ppdet itself is not a dependency here: install it either from PyPI without its dependencies
(``pip install --no-deps paddledet==2.6.0``, what ``make`` does) or from a PaddleDetection checkout
(``make test PPDET_SRC=...``). paddledet 2.6.0's own pins (numpy<1.24, opencv-python<=4.6.0) have no wheels for
Python 3.12 / 3.13, and its code does not need them; the packages its detection code imports are declared below
with pins that have wheels for Python 3.9 to 3.13 (docs/platform.md).
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # numpy 1.x where it has wheels (up to Python 3.12); Python 3.13 has no numpy wheel below 2.1. numpy 2.4
    # removed np.reshape(newshape=), which ppdet's Gt2FCOSTarget (FCOS reader) still uses.
    "numpy>=1.21,<2; python_version < '3.13'",
    "numpy>=2.1,<2.4; python_version >= '3.13'",
    # opencv-python 4.6 is built against numpy 1.x (it fails to import under numpy 2); 4.10+ supports numpy 2.
    "opencv-python>=4.5,<4.7; python_version < '3.13'",
    "opencv-python>=4.10; python_version >= '3.13'",
    # What ppdet's detection code (reader, metrics, trainer) imports.
    "scipy>=1.7",
    "shapely>=1.8",
    "pycocotools>=2.0",
    "tqdm",
    "typeguard",
    "terminaltables",
    "Pillow",
    "setuptools",
    "six",
    "requests",
    "pandas>=1.3,<3",
    # ppdet imports scikit-learn; its `sklearn==0.0` pin does not install it.
    "scikit-learn>=1.0,<1.6",
    # ppassign itself.
    "matplotlib>=3.5",
    "PyYAML>=5.4",
    "psutil>=5.8",
]

setup(
    name="ppassign",
    version="0.1.0",
    description="Label assignment (ATSS, TAL, AutoAssign, DW) for PaddleDetection on Paddle 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ppassign", "ppassign.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # Paddle is an extra: CPU users and GPU users need different wheels.
        "cpu": ["paddlepaddle>=3.0,<3.4"],
        # Paddle 3.x GPU wheels come from Paddle's own index (see README).
        "gpu": ["paddlepaddle-gpu>=3.0"],
        # PaddleDetection checkouts (release/2.7, develop) import imgaug at `import ppdet`.
        "ppdet-src": ["imgaug>=0.4.0"],
        "test": ["pytest>=7"],
    },
    license="Apache-2.0",
)
