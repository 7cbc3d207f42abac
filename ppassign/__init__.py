"""ppassign: label assignment for PaddleDetection on Paddle 3.

``import ppassign`` applies the platform shims and registers ppassign's modules in ppdet's workspace; the full
list of what it does to Paddle and ppdet is in `ppassign.plugin`.

Layout (imports run one way, each layer only from those before it): ``ops/`` (box geometry, input checks) ←
``assigners/`` (one file per assignment method) ← ``heads/`` (heads whose loss assigns) ← ``engine/`` (what
tools/ run) ← ``analysis/`` (assignment maps and statistics of a trained model). ``compat/`` holds every ppdet /
Paddle shim, ``registry`` puts classes into ppdet's workspace, ``data/`` the built-in dataset.
"""
from ._version import __version__  # noqa: F401
from . import plugin
from .assigners import ATSSAssigner, TaskAlignedAssigner  # noqa: F401

plugin.install()
