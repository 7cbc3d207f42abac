"""ppassign: modern label assignment for PaddleDetection (ppdet) on Paddle 3."""
from setuptools import find_packages, setup

# Pins verified on Python 3.11 / 2-core CPU, see ../shared/PLATFORM.md:
#  - paddledet 2.6.0 is the newest PaddleDetection wheel; it needs numpy<1.24 and opencv<=4.6.
#  - its `sklearn==0.0` pin does not bring scikit-learn; newer scikit-learn pulls numpy 2.
INSTALL_REQUIRES = [
    "paddledet==2.6.0",
    "numpy>=1.21,<1.24",
    "scikit-learn<1.6",
    "opencv-python<=4.6.0.66",
    "pycocotools>=2.0",
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
    python_requires=">=3.8",
    packages=find_packages(include=["ppassign", "ppassign.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # Paddle is an extra: CPU users and GPU users need different wheels.
        "cpu": ["paddlepaddle>=3.0,<3.4"],
        # Paddle 3.x GPU wheels come from Paddle's own index (see README).
        "gpu": ["paddlepaddle-gpu>=3.0"],
        "test": ["pytest>=7"],
    },
    license="Apache-2.0",
)
