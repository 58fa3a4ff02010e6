"""Run by test_models_sharding.py in a subprocess with 8 simulated CPU devices (helper).

argv: output json path, then checkpoint directories. For each checkpoint: logits on one
device, then on meshes data x model = 8x1 and 2x4; parameter specs; init_model values with
and without a mesh.
"""

import json
import os
import sys

assert "xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from rce_jax.models import compute_logits, from_pretrained, init_model  # noqa: E402
from rce_jax.models.checkpoint import Checkpoint  # noqa: E402
from rce_jax.sharding import make_mesh, shard_batch  # noqa: E402


def specs(model):
    return {".".join(map(str, p)): str(tuple(v[...].sharding.spec))
            for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def distinct_blocks(model):
    """How many different blocks the model's parameters are made of on their devices."""
    return sum(len({tuple(s.indices(n) for s, n in zip(idx, a.shape))
                    for idx in a.sharding.devices_indices_map(a.shape).values()})
               for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)) for a in [v[...]])


def main(out_path, dirs):
    assert jax.device_count() == 8
    reads = []
    original_read = Checkpoint.read

    def counting_read(self, name, index):
        reads.append(name)
        return original_read(self, name, index)

    Checkpoint.read = counting_read
    results = {}
    for d in dirs:
        model, config, _ = from_pretrained(d, tokenizer=False)
        ids = np.random.default_rng(0).integers(0, config.vocab_size, (8, 96)).astype(np.int32)
        seg = np.repeat(np.array([0] * 40 + [1] * 56, np.int32)[None], 8, axis=0)
        ref = np.asarray(compute_logits(model, jnp.asarray(ids)))
        ref_seg = np.asarray(compute_logits(model, jnp.asarray(ids), segment_ids_BxL=jnp.asarray(seg)))
        r = {"family": config.family}
        for data, mdl in ((8, 1), (2, 4)):
            mesh = make_mesh(data, mdl)
            reads.clear()
            sharded, _, _ = from_pretrained(d, mesh=mesh, tokenizer=False)
            n_reads = len(reads)
            with jax.set_mesh(mesh):
                out = compute_logits(sharded, shard_batch(ids, mesh))
                out_seg = compute_logits(sharded, shard_batch(ids, mesh),
                                         segment_ids_BxL=shard_batch(seg, mesh))
            fresh = init_model(config, seed=7, mesh=mesh)
            plain = init_model(config, seed=7)
            same_init = all(
                np.array_equal(np.asarray(a[...]), np.asarray(b[...]))
                for (_, a), (_, b) in zip(nnx.to_flat_state(nnx.state(fresh, nnx.Param)),
                                          nnx.to_flat_state(nnx.state(plain, nnx.Param))))
            r[f"{data}x{mdl}"] = {
                "max_diff": float(np.abs(np.asarray(out) - ref).max()),
                "max_diff_segments": float(np.abs(np.asarray(out_seg) - ref_seg).max()),
                "output_spec": str(tuple(out.sharding.spec)),
                "specs": specs(sharded), "init_specs": specs(fresh),
                "init_same_as_single_device": same_init,
                "checkpoint_reads": n_reads, "distinct_blocks": distinct_blocks(sharded),
            }
        results[d] = r
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
