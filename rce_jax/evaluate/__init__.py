"""The evaluation pipeline: corpus -> windows -> model -> token statistics -> RankStats -> result."""

from .profile import ProfileStats, profile_sums
from .runner import EvalConfig, evaluate, plan_kernels, result_path, score_plan, stats_path
from .step import ScoreOptions, score_batch

__all__ = ["EvalConfig", "ProfileStats", "ScoreOptions", "evaluate", "plan_kernels", "profile_sums",
           "result_path", "score_batch", "score_plan", "stats_path"]
