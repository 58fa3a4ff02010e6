"""Run by test_train_mesh.py in a subprocess with 8 simulated CPU devices (helper).

argv: config JSON path, folder, output JSON path. Trains the same config on one device, on a
data-parallel 8x1 mesh, on 8x1 with FSDP and on a 4x2 (data x model) mesh; writes each run's
train rows and final held-out CE, and where the parameters lived.
"""

import json
import os
import sys

assert "xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from rce_jax.sharding import make_mesh  # noqa: E402
from rce_jax.train import TrainConfig, train  # noqa: E402


def main(config_path, folder, out_path):
    assert jax.device_count() == 8
    base = TrainConfig.from_dict(json.loads(open(config_path).read()))
    runs = {"one": (None, False), "dp8": (make_mesh(8, 1), False), "fsdp8": (make_mesh(8, 1), True),
            "dp4_mp2": (make_mesh(4, 2), False)}
    out = {}
    for name, (mesh, fsdp) in runs.items():
        result = train(base.replace(fsdp=fsdp), os.path.join(folder, name), mesh=mesh, progress=False,
                       verbose=False, figures=False)
        params = nnx.state(result.model, nnx.Param)
        specs = {".".join(map(str, p)): str(tuple(getattr(v[...].sharding, "spec", ())))
                 for p, v in nnx.to_flat_state(params)}
        out[name] = {"rows": [r for r in result.rows if "loss" in r],
                     "eval": [r["eval"] for r in result.rows if "eval" in r],
                     "specs": specs}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
