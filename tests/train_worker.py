"""Run by test_train_resume.py in a subprocess (helper): train a config, optionally SIGKILL itself.

argv: config JSON path, run folder, step after which to SIGKILL (-1: never).
"""

import json
import os
import signal
import sys

from rce_jax.train import TrainConfig, train


def main(config_path, out_dir, kill_at):
    config = TrainConfig.from_dict(json.loads(open(config_path).read()))

    def on_step(step, row):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no flush

    train(config, out_dir, progress=False, on_step=on_step)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
