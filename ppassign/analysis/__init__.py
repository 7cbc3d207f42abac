"""Seeing label assignment on a model: per-location assignment maps (`assignment`, `models`, `drawing`),
assignment statistics over a dataset (`stats`, `retina_stats`, `refine_stats`) and the runner that tools/
vis_assign.py and tools/assign_stats.py call (`runner`). Each submodule is imported on use:
``from ppassign.analysis import stats``. The benchmarks and the training comparison live outside the library,
in the checkout's ``benchmarks/``."""
