"""Run by test_eval.py as one of two CPU processes joined by jax.distributed (helper).

argv: coordinator port, process id. Each process has two simulated devices. For meshes
('data', 'model') 4x1 and 1x4 it puts a global batch, which every process holds whole (as
every process builds the same plan), on the mesh with the ``rce_jax.sharding.shard_batch`` and
prints the global shape and a jitted sum that every device sees.
"""

import os
import sys

port, pid = sys.argv[1], int(sys.argv[2])
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=60)

import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from rce_jax.sharding import shard_batch  # noqa: E402
from rce_jax.sharding import make_mesh  # noqa: E402

batch = np.arange(12, dtype=np.int32).reshape(4, 3)
for model in (1, 4):
    mesh = make_mesh(model=model)
    x = shard_batch({"input_ids": batch}, mesh)["input_ids"]
    total = jax.jit(lambda a: a.sum(), out_shardings=NamedSharding(mesh, P()))(x)
    print(f"RESULT model={model} {tuple(x.shape)} {int(np.asarray(total.addressable_data(0)))}",
          flush=True)
jax.distributed.shutdown()
