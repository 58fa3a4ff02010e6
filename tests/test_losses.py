"""The proxy loss L = CE + lam * Conf (docs/design.md#2-the-proxy-loss) and its hand-written backward."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rce_jax
import rce_kernels
from np_reference import fresh_rng, np_decompose, np_token_stats
from tolerances import (GRAD_SHARED_LOGITS_ABS, LOSS_F32_ABS, LOSS_F32_REL, LOSS_SHARED_LOGITS_ABS,
                        ONE_F32_ROUNDING_REL)


def design_loss(logits, targets, mask, lam):
    """docs/design.md#2-the-proxy-loss in plain jnp, differentiated by autodiff: p, q and C over the scored
    tokens, ranks (strictly greater entries) held constant with stop_gradient."""
    V = logits.shape[-1]
    log_s = jnp.take_along_axis(jax.nn.log_softmax(logits), targets[:, None], 1)[:, 0]
    z_y = jnp.take_along_axis(logits, targets[:, None], 1)
    rank = jax.lax.stop_gradient(jnp.sum(logits > z_y, axis=1))
    n = jnp.sum(mask)
    ce = -jnp.sum(jnp.where(mask, log_s, 0.0)) / n
    member = (rank[:, None] == jnp.arange(V)[None, :]) & mask[:, None]  # token i has rank e
    n_e = jnp.sum(member, axis=0)
    mean_log_s = jnp.sum(jnp.where(member, log_s[:, None], 0.0), axis=0) / jnp.maximum(n_e, 1)
    conf = jax.nn.logsumexp(jnp.where(n_e > 0, mean_log_s, -jnp.inf))  # log C = log sum_e Q_e
    return ce + lam * conf


def problem(seed, T=48, V=40):
    k = jax.random.split(jax.random.key(seed), 3)
    logits = jax.random.normal(k[0], (T, V)) * 2.5
    targets = jax.random.randint(k[1], (T,), 0, V)
    mask = jax.random.bernoulli(k[2], 0.75, (T,))
    return logits, targets, mask


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.9])
def test_gradient_matches_autodiff_of_the_design_formula(lam):
    """Loss and logits gradient equal jax.grad of the formula of docs/design.md#2-the-proxy-loss to 1e-5 (f32), masked
    tokens included; aux.ce, aux.conf and the loss equal CE, Conf and CE + lam Conf computed in
    float64 NumPy from the scored tokens' ranks and log-probabilities, to 1e-5."""
    logits, targets, mask = problem(int(lam * 100))
    (loss, aux), grad = jax.value_and_grad(
        lambda z: rce_jax.proxy_loss(z, targets, mask, lam=lam, impl="xla"), has_aux=True
    )(logits)
    ref_loss, ref_grad = jax.value_and_grad(design_loss)(logits, targets, mask, lam)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=0, atol=LOSS_F32_ABS)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=0, atol=LOSS_F32_ABS)
    assert int(aux.n_tokens) == int(mask.sum())
    scored = np.asarray(mask)
    logp, rank, _ = np_token_stats(np.asarray(logits)[scored], np.asarray(targets)[scored])
    ref = np_decompose(logp, rank)  # float64, from the definitions (tests/np_reference.py)
    np.testing.assert_allclose(float(aux.ce), ref["ce"], rtol=0, atol=LOSS_F32_ABS)
    np.testing.assert_allclose(float(aux.conf), ref["conf"], rtol=0, atol=LOSS_F32_ABS)
    np.testing.assert_allclose(float(loss), ref["ce"] + lam * ref["conf"], rtol=0, atol=LOSS_F32_ABS)


def test_lam_zero_is_optax_cross_entropy():
    """With lam = 0 the loss and its gradient are optax's mean cross-entropy over the scored
    tokens (integer labels)."""
    logits, targets, mask = problem(1)

    def ce(z):
        per_token = optax.softmax_cross_entropy_with_integer_labels(z, targets)
        return jnp.sum(jnp.where(mask, per_token, 0.0)) / jnp.sum(mask)

    ref_loss, ref_grad = jax.value_and_grad(ce)(logits)
    (loss, aux), grad = jax.value_and_grad(
        lambda z: rce_jax.proxy_loss(z, targets, mask, lam=0.0), has_aux=True)(logits)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=ONE_F32_ROUNDING_REL,
                               atol=LOSS_SHARED_LOGITS_ABS)
    np.testing.assert_allclose(float(aux.ce), float(ref_loss), rtol=ONE_F32_ROUNDING_REL,
                               atol=LOSS_SHARED_LOGITS_ABS)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=0, atol=LOSS_SHARED_LOGITS_ABS)


def test_masked_tokens_contribute_nothing():
    """Masked rows get exactly zero gradient, and their logits (even NaN) and targets (even -100)
    do not change the loss."""
    logits, targets, mask = problem(2)
    f = lambda z, t: rce_jax.proxy_loss(z, t, mask, lam=0.5, impl="xla")[0]
    loss, grad = jax.value_and_grad(f)(logits, targets)
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0)
    garbage = jnp.where(mask[:, None], logits, jnp.nan)
    np.testing.assert_allclose(float(f(garbage, jnp.where(mask, targets, -100))), float(loss),
                               rtol=LOSS_F32_REL)


def test_kernel_forward_and_batched_shapes():
    """Through the GPU kernel (interpret mode) on [B, L, V] logits with a vocab_limit, the loss
    and gradient equal the XLA path's, and columns past the limit get zero gradient."""
    logits, targets, mask = problem(3, T=64, V=300)
    targets = targets % 280
    f = lambda z, impl: rce_jax.proxy_loss(z.reshape(4, 16, 300), targets.reshape(4, 16),
                                           mask.reshape(4, 16), lam=0.3, impl=impl,
                                           vocab_limit=280)[0]
    loss, grad = jax.value_and_grad(f)(logits, "pallas_interpret")
    ref_loss, ref_grad = jax.value_and_grad(f)(logits, "xla")
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=ONE_F32_ROUNDING_REL,
                               atol=LOSS_SHARED_LOGITS_ABS)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=ONE_F32_ROUNDING_REL,
                               atol=GRAD_SHARED_LOGITS_ABS)
    assert np.all(np.asarray(grad)[:, 280:] == 0)


def test_lam_is_validated():
    """Concrete lam outside [0, 1) raises; a traced out-of-range lam makes the loss NaN; a
    traced lam in range gives the same loss as a Python float."""
    logits, targets, mask = problem(4)
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="lam must lie in"):
            rce_jax.proxy_loss(logits, targets, mask, lam=bad)
    f = jax.jit(lambda lam: rce_jax.proxy_loss(logits, targets, mask, lam=lam, impl="xla")[0])
    assert np.isnan(float(f(jnp.float32(1.5))))
    np.testing.assert_allclose(
        float(f(jnp.float32(0.4))),
        float(rce_jax.proxy_loss(logits, targets, mask, lam=0.4, impl="xla")[0]), rtol=LOSS_F32_REL)


def test_all_masked_batch_and_bad_rows():
    """An all-masked batch gives loss 0, zero gradient and n_tokens 0; a scored row with NaN
    logits makes the loss NaN; an out-of-range scored target raises."""
    logits, targets, _ = problem(5)
    none = jnp.zeros(targets.shape, bool)
    (loss, aux), grad = jax.value_and_grad(
        lambda z: rce_jax.proxy_loss(z, targets, none, lam=0.5, impl="xla"), has_aux=True)(logits)
    assert float(loss) == 0.0 and int(aux.n_tokens) == 0 and not np.any(np.asarray(grad))
    nan_row = logits.at[0, 3].set(jnp.nan)
    assert np.isnan(float(rce_jax.proxy_loss(nan_row, targets, lam=0.5, impl="xla")[0]))
    with pytest.raises(ValueError, match="outside"):
        rce_jax.proxy_loss(logits, targets.at[1].set(40), lam=0.5)


@pytest.mark.parametrize("impl", ["xla", "pallas_tpu_interpret"])
def test_fused_gradients_match_autodiff_of_materialised_logits(impl):
    """proxy_loss_fused: loss and the hidden, head and bias gradients equal autodiff of the
    the docs/design.md#2-the-proxy-loss formula on materialised logits hidden @ head.T + bias (f32, 1e-5), with masked tokens
    and a vocab_limit."""
    T, D, V, limit = 40, 24, 150, 140
    k = jax.random.split(jax.random.key(6), 5)
    hidden = jax.random.normal(k[0], (T, D))
    head = jax.random.normal(k[1], (V, D)) / np.sqrt(D) * 3
    bias = jax.random.normal(k[2], (V,)) * 0.3
    targets = jax.random.randint(k[3], (T,), 0, limit)
    mask = jax.random.bernoulli(k[4], 0.8, (T,))

    def fused(h, w, b):
        return rce_jax.proxy_loss_fused(h, w, targets, mask, lam=0.4, bias=b, impl=impl,
                                        vocab_limit=limit)[0]

    def materialised(h, w, b):
        logits = jnp.dot(h, w.T, precision=jax.lax.Precision.HIGHEST) + b
        return design_loss(logits[:, :limit], targets, mask, 0.4)

    loss, grads = jax.value_and_grad(fused, argnums=(0, 1, 2))(hidden, head, bias)
    ref_loss, ref_grads = jax.value_and_grad(materialised, argnums=(0, 1, 2))(hidden, head, bias)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=ONE_F32_ROUNDING_REL,
                               atol=LOSS_F32_ABS)
    chex.assert_trees_all_close(grads, ref_grads, rtol=0, atol=LOSS_F32_ABS)


def test_fused_lam_zero_is_cross_entropy_through_the_head():
    """proxy_loss_fused with lam = 0 and no bias has optax's CE gradients for hidden and head,
    on [B, L, d] hidden states."""
    B, L, D, V = 3, 10, 16, 90
    k = jax.random.split(jax.random.key(7), 3)
    hidden = jax.random.normal(k[0], (B, L, D))
    head = jax.random.normal(k[1], (V, D)) / 2
    targets = jax.random.randint(k[2], (B, L), 0, V)

    def ce(h, w):
        logits = jnp.einsum("bld,vd->blv", h, w, precision=jax.lax.Precision.HIGHEST)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    fused = lambda h, w: rce_jax.proxy_loss_fused(h, w, targets, lam=0.0, impl="xla")[0]
    (loss, grads), (ref, ref_grads) = (jax.value_and_grad(f, argnums=(0, 1))(hidden, head)
                                       for f in (fused, ce))
    np.testing.assert_allclose(float(loss), float(ref), rtol=ONE_F32_ROUNDING_REL,
                               atol=LOSS_F32_ABS)
    chex.assert_trees_all_close(grads, ref_grads, rtol=0, atol=LOSS_F32_ABS)


def test_fused_masked_rows_with_overflowing_logits_change_no_gradient():
    """A masked row whose logits overflow (inf / NaN) leaves the loss and every gradient exactly
    as if that row held zeros: masked rows contribute nothing, not 0 * NaN."""
    T, D, V = 24, 8, 50
    k = jax.random.split(jax.random.key(11), 4)
    hidden = jax.random.normal(k[0], (T, D))
    head = jax.random.normal(k[1], (V, D)) / 2
    bias = jax.random.normal(k[2], (V,)) * 0.1
    targets = jax.random.randint(k[3], (T,), 0, V)
    mask = jnp.ones(T, bool).at[5].set(False)
    f = lambda h, w, b: rce_jax.proxy_loss_fused(h, w, targets, mask, lam=0.3, bias=b,
                                                 impl="xla")[0]
    grad = jax.value_and_grad(f, argnums=(0, 1, 2))
    clean_loss, clean = grad(hidden.at[5].set(0.0), head, bias)
    loss, grads = grad(hidden.at[5].set(3e38), head, bias)  # row 5 finite, its logits overflow
    assert float(loss) == float(clean_loss)
    for g, r in zip(grads, clean):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(r))


def test_fused_backward_with_blocks_that_do_not_divide_the_shapes():
    """The tiled backward (7-row blocks on T = 30, 32-column tiles on a vocab_limit of 101, so
    both last blocks are clamped and overlap) gives the hidden, head and bias gradients of the
    per-token weighted cross-entropy sum_t w_t (lse_t - z_t[y_t]) on materialised logits."""
    T, D, V, limit = 30, 12, 110, 101
    k = jax.random.split(jax.random.key(8), 5)
    hidden = jax.random.normal(k[0], (T, D))
    head = jax.random.normal(k[1], (V, D))
    bias = jax.random.normal(k[2], (V,))
    targets = jax.random.randint(k[3], (T,), 0, limit)
    weight = jax.random.uniform(k[4], (T,), minval=-1.0, maxval=1.0)

    def weighted_ce(h, w, b):
        z = (jnp.dot(h, w.T, precision=jax.lax.Precision.HIGHEST) + b)[:, :limit]
        z_y = jnp.take_along_axis(z, targets[:, None], 1)[:, 0]
        return jnp.sum(weight * (jax.nn.logsumexp(z, axis=1) - z_y))

    z = (jnp.dot(hidden, head.T, precision=jax.lax.Precision.HIGHEST) + bias)[:, :limit]
    lse = jax.nn.logsumexp(z, axis=1)
    grads = rce_kernels.fused_logits_backward_xla(
        hidden, head, bias, targets, lse, weight, vocab_limit=limit, block_rows=7, block_cols=32,
        precision=jax.lax.Precision.HIGHEST)
    ref = jax.grad(weighted_ce, argnums=(0, 1, 2))(hidden, head, bias)
    chex.assert_trees_all_close(tuple(grads), ref, rtol=0, atol=LOSS_F32_ABS)


class TestProxyLossJittedAndEager(chex.TestCase):
    """``rce_jax.proxy_loss`` and ``proxy_loss_fused`` give, eagerly and under ``jax.jit``
    (``chex.variants``), the loss, CE, Conf and token count that float64 NumPy computes from the
    definitions (tests/np_reference.py) on fresh inputs whose logits are exact in float32 (small
    integers, a bias in eighths), so both routes see the same ranks: to LOSS_F32_ABS."""

    def check(self, loss, aux, logits, targets, mask, lam):
        logp, rank, _ = np_token_stats(logits[mask], targets[mask])
        ref = np_decompose(logp, rank)
        assert int(aux.n_tokens) == int(mask.sum())
        chex.assert_trees_all_close((loss, aux.ce, aux.conf),
                                    (ref["ce"] + lam * ref["conf"], ref["ce"], ref["conf"]),
                                    rtol=0, atol=LOSS_F32_ABS)

    @chex.variants(with_jit=True, without_jit=True)
    def test_materialised(self):
        rng = fresh_rng()
        T, V, lam = 40, 60, 0.35
        logits = np.round(rng.normal(0, 2, (T, V)) * 8) / 8  # eighths: exact, with ties
        targets, mask = rng.integers(0, V, T), rng.random(T) < 0.8
        loss_fn = self.variant(functools.partial(rce_jax.proxy_loss, lam=lam, impl="xla"))
        loss, aux = loss_fn(jnp.asarray(logits, jnp.float32), jnp.asarray(targets, jnp.int32),
                            jnp.asarray(mask))
        self.check(loss, aux, logits, targets, mask, lam)

    @chex.variants(with_jit=True, without_jit=True)
    def test_fused(self):
        rng = fresh_rng()
        T, D, V, lam = 32, 8, 90, 0.6
        hidden, head = rng.integers(-2, 3, (T, D)), rng.integers(-2, 3, (V, D))
        bias = rng.integers(-8, 9, V) / 8
        targets, mask = rng.integers(0, V, T), rng.random(T) < 0.8
        loss_fn = self.variant(functools.partial(rce_jax.proxy_loss_fused, lam=lam, impl="xla"))
        loss, aux = loss_fn(jnp.asarray(hidden, jnp.float32), jnp.asarray(head, jnp.float32),
                            jnp.asarray(targets, jnp.int32), jnp.asarray(mask),
                            bias=jnp.asarray(bias, jnp.float32))
        self.check(loss, aux, hidden.astype(float) @ head.T.astype(float) + bias, targets, mask, lam)
