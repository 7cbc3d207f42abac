"""Tools for seeing and comparing label assignment: per-location assignment maps (`assignment`, `models`,
`drawing`), assignment statistics over a dataset (`stats`) and a same-budget training comparison (`compare`).
Each submodule is imported on use: ``from ppassign.analysis import stats``."""
