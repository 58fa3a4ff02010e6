"""The proxy-loss trainer (optax + orbax) and the identical-recipe model ladder.

    from rce_jax.train import TrainConfig, load_config, train
    result = train(load_config("run.yaml", overrides=["optim.lr=3e-4"]), "runs/a")
"""

from .config import ConfigError, TrainConfig, load_config
from .loop import TrainResult, train

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "load_config", "train"]
