"""Test layout mirrors the package (tests/assigners, tests/heads, ...); shared helpers (assign_cases,
export_check) live here in tests/, which this puts on sys.path for every subfolder."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
