"""One batch type for evaluation and training (rce_jax.data.batch): the same model inputs from both
producers, host positions equal to the model's own, placement by shard_batch, and a training
step whose numbers the explicit positions do not change."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hf_tiny import random_ours
from np_reference import fresh_rng
from train_helpers import run_python

from rce_jax.data import MODEL_INPUTS, Batch, TokenizedCorpus, plan_batches, restarting_positions
from rce_jax.losses import proxy_loss
from rce_jax.models.attention import segment_positions
from rce_jax.sharding import shard_batch
from rce_jax.train.config import OptimSection
from rce_jax.train.data import TrainStream
from rce_jax.train.state import init_state, make_optimizer
from rce_jax.train.step import make_loss_fn, make_train_step


def random_stream(rng, *, vocab: int, seq_len: int, seed: int) -> TrainStream:
    """A training stream of documents of 1..12 tokens (so rows hold several documents)."""
    lengths = rng.integers(1, 13, size=int(rng.integers(40, 60)))
    tokens = rng.integers(1, vocab, size=int(lengths.sum())).astype(np.int32)
    doc_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    return TrainStream(tokens, doc_ids, seq_len=seq_len, seed=seed)


def positions_by_loop(segment_ids_BxL) -> np.ndarray:
    """Positions restarting at 0 at the row start and at each change of segment id (plain loop)."""
    out = np.zeros(segment_ids_BxL.shape, np.int64)
    for r, row in enumerate(segment_ids_BxL.tolist()):
        for t in range(1, len(row)):
            out[r, t] = 0 if row[t] != row[t - 1] else out[r, t - 1] + 1
    return out


def test_train_and_eval_batches_have_the_same_type_and_model_inputs():
    """TrainStream.batch and BatchPlan.batch both give a Batch whose model inputs have the names
    of MODEL_INPUTS, in order, with the same dtypes and [B, L] shapes; shard_batch of either
    gives device arrays of exactly those names."""
    rng = fresh_rng()
    B, L = 4, 16
    train = random_stream(rng, vocab=50, seq_len=L, seed=int(rng.integers(1 << 30))).batch(3, B)
    docs = [rng.integers(1, 50, int(n)).tolist() for n in rng.integers(0, 40, 30)]
    evalb = plan_batches(TokenizedCorpus.from_token_lists(docs, 0), seq_len=L, batch_size=B).batch(0)
    assert type(train) is type(evalb) is Batch and train.index == 3
    for b in (train, evalb):
        inputs = b.model_inputs()
        assert list(inputs) == list(MODEL_INPUTS)
        assert {k: (v.dtype, v.shape) for k, v in inputs.items()} == {
            "input_ids": (np.int32, (B, L)), "target_ids": (np.int32, (B, L)),
            "score_mask": (np.bool_, (B, L)), "segment_ids": (np.int32, (B, L)),
            "positions": (np.int32, (B, L))}
        placed = shard_batch(b, None)
        assert sorted(placed) == sorted(MODEL_INPUTS)  # a pytree: the dict comes back key-sorted
        for k in MODEL_INPUTS:
            np.testing.assert_array_equal(np.asarray(placed[k]), inputs[k])


def test_train_batch_positions_and_bookkeeping_follow_the_stream():
    """A training batch's positions restart at 0 in each segment (an independent loop), equal the
    model's own derivation (rce_jax.models.attention.segment_positions) exactly, and its doc_ids /
    target_index name each input's document and each scored target's index in that document's
    tokens (the prefix is -1: the loop counts from the document's first stream position)."""
    rng = fresh_rng()
    L = 24
    stream = random_stream(rng, vocab=50, seq_len=L, seed=int(rng.integers(1 << 30)))
    first = {}
    for p, d in enumerate(stream.doc_ids.tolist()):
        first.setdefault(d, p)
    for step in (0, int(rng.integers(1, 500))):
        batch, starts = stream.batch(step, 5), stream.row_starts(step, 5)
        assert batch.index == step
        assert (batch.segment_ids > 1).any(), "rows should hold several documents"
        np.testing.assert_array_equal(batch.positions, positions_by_loop(batch.segment_ids))
        np.testing.assert_array_equal(batch.positions,
                                      np.asarray(segment_positions(jnp.asarray(batch.segment_ids))))
        for r, s in enumerate(starts.tolist()):
            for t in range(L):
                d = int(stream.doc_ids[s + t])
                assert batch.doc_ids[r, t] == d
                scored = stream.doc_ids[s + t + 1] == d
                assert batch.score_mask[r, t] == scored
                assert batch.target_index[r, t] == (s + t + 1 - first[d] - 1 if scored else -1)


def test_restarting_positions_equal_the_models_derivation():
    """restarting_positions (host, NumPy) equals segment_positions (the model's, JAX) exactly on
    random segment ids with padding (0) and repeated runs."""
    rng = fresh_rng()
    seg = np.cumsum(rng.random((6, 40)) < 0.2, axis=1).astype(np.int32)
    seg[:, 30:] = 0  # trailing padding, as in an evaluation row
    got = restarting_positions(seg)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.asarray(segment_positions(jnp.asarray(seg))))
    np.testing.assert_array_equal(got, positions_by_loop(seg))
    with pytest.raises(ValueError, match=r"segment ids must be \[B, L\]"):
        restarting_positions(seg[0])


def test_a_bad_batch_is_refused():
    """A Batch whose arrays disagree in shape or dtype is a one-line ValueError naming the field."""
    z = np.zeros((2, 4), np.int32)
    fields = dict(index=0, input_ids=z, target_ids=z, score_mask=z.astype(bool), segment_ids=z,
                  positions=z, doc_ids=z, target_index=z)
    Batch(**fields)
    with pytest.raises(ValueError, match=r"score_mask is int32\[2, 4\], expected bool\[2, 4\]"):
        Batch(**{**fields, "score_mask": z})
    with pytest.raises(ValueError, match=r"positions is int32\[2, 3\], expected int32\[2, 4\]"):
        Batch(**{**fields, "positions": z[:, :3]})
    with pytest.raises(ValueError, match=r"must be \[B, L\]"):
        Batch(**{**fields, "input_ids": z[0]})


def test_a_stream_whose_documents_are_not_runs_is_refused():
    """TrainStream refuses doc_ids that are not non-decreasing (a document split into several
    runs), before any batch is built."""
    tokens = np.arange(1, 9, dtype=np.int32)
    with pytest.raises(ValueError, match="doc_ids must be non-decreasing"):
        TrainStream(tokens, np.array([0, 0, 1, 1, 0, 0, 2, 2]), seq_len=2, seed=0)


def _loss_fn_with_derived_positions(graphdef, lam):
    """The training loss as it was before batches carried positions: the model derives them from
    the segment ids (materialised logits, the naive statistics: the CPU default)."""

    def loss_fn(params, batch):
        model = nnx.merge(graphdef, params)
        h = model.hidden_states(batch["input_ids"], segment_ids_BxL=batch["segment_ids"])
        w, _ = model.lm_head()
        logits = jnp.einsum("ble,ve->blv", h, w.astype(h.dtype))
        return proxy_loss(logits, batch["target_ids"], batch["score_mask"], lam=lam, impl="naive")

    return loss_fn


@pytest.mark.parametrize("variant", ["gpt2", "opt_pre_ln", "llama3_gqa_untied"])
def test_explicit_positions_change_no_number_of_a_training_step(variant):
    """One training step on a training batch with its host positions gives bitwise the same loss,
    CE, Conf, gradient norm and updated parameters as the step with the model deriving positions
    from the segment ids (learned position tables: GPT-2, OPT with its offset; RoPE: Llama). Exact
    on CPU: the positions are the same integers (tested above), so every float operation is the
    same."""
    rng = fresh_rng()
    model, config = random_ours(variant, seed=int(rng.integers(1 << 16)))
    graphdef, params = nnx.split(model)
    stream = random_stream(rng, vocab=config.vocab_size, seq_len=32, seed=int(rng.integers(1 << 30)))
    batch = shard_batch(stream.batch(int(rng.integers(0, 100)), 4), None)
    tx, schedule = make_optimizer(OptimSection(), 1, config.hidden_size)
    lam = 0.3
    outs = []
    for loss_fn in (make_loss_fn(graphdef, lam=lam, head="materialised", impl="naive"),
                    _loss_fn_with_derived_positions(graphdef, lam)):
        state, _ = init_state(jax.tree.map(jnp.copy, params), tx, family=config.family)
        outs.append(jax.device_get(make_train_step(loss_fn, tx, schedule)(state, batch)))
    (new_a, metrics_a), (new_b, metrics_b) = outs
    assert metrics_a["lr"] > 0
    assert metrics_a["scored_tokens"] == int(np.asarray(batch["score_mask"]).sum()) > 0
    for key in ("loss", "ce", "conf", "grad_norm", "scored_tokens"):
        assert np.array_equal(metrics_a[key], metrics_b[key]), key
    for a, b in zip(jax.tree.leaves(new_a["params"]), jax.tree.leaves(new_b["params"]), strict=True):
        np.testing.assert_array_equal(a, b)


_MESH_CHECK = """
import jax, numpy as np
from rce_jax.data import MODEL_INPUTS
from rce_jax.sharding import make_mesh, shard_batch
from rce_jax.train.data import TrainStream
assert jax.device_count() == 4
rng = np.random.default_rng(SEED)
lengths = rng.integers(1, 13, size=50)
stream = TrainStream(rng.integers(1, 50, size=int(lengths.sum())),
                     np.repeat(np.arange(50), lengths), seq_len=8, seed=0)
mesh = make_mesh(data=4, model=1)
host = stream.batch(1, 8)
placed = shard_batch(host, mesh)
assert sorted(placed) == sorted(MODEL_INPUTS), sorted(placed)
for k in MODEL_INPUTS:
    assert placed[k].sharding.spec[0] == "data", placed[k].sharding
    assert len(placed[k].addressable_shards) == 4
    np.testing.assert_array_equal(np.asarray(placed[k]), getattr(host, k))
try:
    shard_batch(stream.batch(1, 6), mesh)
except ValueError as e:
    assert "global batch of 6 rows is not divisible by the 'data' axis (4)" in str(e), e
else:
    raise AssertionError("6 rows on 4 data devices were accepted")
print("ok")
"""


def test_shard_batch_places_a_batch_on_a_mesh():
    """On a mesh of 4 simulated CPU devices, shard_batch of a training Batch gives its model
    inputs split by rows over 'data' with the host values; a batch whose rows the 'data' axis does
    not divide is refused with the same message as before."""
    seed = int(fresh_rng().integers(1 << 30))
    proc = run_python(["-c", _MESH_CHECK.replace("SEED", str(seed))],
                      env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
