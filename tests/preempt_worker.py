"""Run by test_faults.py as one of two CPU processes joined by jax.distributed (helper).

argv: coordinator port, process id. Inside ``preemption_guard`` both processes ask
``preempt.requested()`` once (no signal yet), then process 1 alone sends itself a real SIGTERM,
and both ask again: each prints what it got. They must agree, and process 0 (never signalled)
must see SIGTERM too.
"""

import os
import signal
import sys

port, pid = sys.argv[1], int(sys.argv[2])

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=60)

from rce_jax.preempt import local_signal, preemption_guard, requested  # noqa: E402

with preemption_guard():
    before = requested()
    if pid == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    after = requested()
    print(f"RESULT pid={pid} before={before} local={local_signal()} after={after}", flush=True)
jax.distributed.shutdown()
