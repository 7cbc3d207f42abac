"""Label assigners: one file per method, each registered in ppdet's workspace by ``ppassign.registry``.

- atss_assigner.ATSSAssigner: ATSS (adaptive IoU threshold over centre-nearest candidates), drop-in for ppdet's.
- task_aligned_assigner.TaskAlignedAssigner: TOOD's task-aligned assigner, drop-in for ppdet's.
- assign_utils: conflict resolution and dense targets shared by both; grid: regular-grid index work.
"""
from .atss_assigner import ATSSAssigner
from .task_aligned_assigner import TaskAlignedAssigner

__all__ = ["ATSSAssigner", "TaskAlignedAssigner"]
