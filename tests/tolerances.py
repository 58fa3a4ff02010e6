"""Every numeric tolerance of the tests, with its derivation or its measurement (one place).

Notation: u32 = 2**-24 ~ 6.0e-8 and u64 = 2**-53 ~ 1.1e-16 are the unit roundoffs of float32 and
float64; ulp(x) is the spacing of floats at |x| (float32: ulp(16) = 2**-19 ~ 1.9e-6). A
tolerance is *derived* when an error bound is written next to it, *measured* when the measured
value and the margin are. Exact things stay exact and have no entry here: counts, ranks (away
from float32 near-ties, which the fixtures exclude), ties, integer token ids, the equality of
two runs that fold the same batches in the same order.

The table in docs/testing.md lists the same constants with the tests that use them.
"""

from __future__ import annotations

U32 = 2.0**-24
U64 = 2.0**-53

# --- float64 host arithmetic --------------------------------------------------------------------

# A float64 expression of a handful of operations (a division, a log, an exp of an argument of
# order 1): each operation adds at most u64 relative error, exp multiplies the argument's error by
# |argument| (< 5 here), so the result is within ~10 u64 = 1.1e-15 of the exact value.
F64_FEW_OPS_REL = 1e-15
# The same comparison where both sides take a different route (log2 of an exp vs a division by
# log 2): ~20 operations' worth, 20 u64 = 2.2e-15, times a margin of 4.
F64_TWO_ROUTES_REL = 1e-14

# Sums of n float64 terms of one sign: relative error <= n u64 (recursive summation). For the
# test corpora n <= 10**4 terms: 1.1e-12; the bound used is 1e-12 where n <= 9000 and the
# terms share a sign (word/byte metrics of a few thousand tokens).
F64_SUM_REL = 1e-12

# The decomposition's identity CE = EE + SA - Conf evaluated in float64 over R distinct ranks:
# each of the three sums over R <= V terms carries <= R u64 |term| error, |terms| <= ~20 (log of
# a probability >= 1e-9 and of counts <= 1e6), V <= 50257: 3 * 50257 * 1.1e-16 * 20 = 3.3e-10.
# Bound 1e-9 (3x margin at the largest vocabulary tested).
F64_IDENTITY_ABS = 1e-9
# Quantities that are mathematically >= 0 (SA = KL(p||q)) computed as a float64 sum of terms of
# both signs of size <= 1: cancellation leaves at most R u64 ~ 1e-12 for R <= 9000 ranks.
F64_NONNEGATIVE_SLACK = 1e-12
# p_e = N_e / N is one division (u64) and sum_e p_e is a sum of R terms of one sign (R u64):
# 1e-15 per entry (a few u64), 1e-12 for the sum (R <= 9000).
F64_DIVISION_ABS = 1e-15
F64_PROBABILITY_SUM_ABS = 1e-12

# --- least squares on exact power laws (float64) ---------------------------------------------------

# Fitting log M = c + a log N by least squares on points exactly on the line: the normal
# equations' condition number for log N in [10, 25] and <= 30 points is ~1e3, so the slope comes
# back within ~1e3 * 30 u64 ~ 3e-12 of its value; intercept (scaled by mean log N ~ 20) within
# 20x that. Bounds 1e-12 / 1e-10 for the slope, 1e-10 / 1e-9 for the intercept, R^2 exact to 1e-12.
FIT_SLOPE_EXACT_ABS = 1e-12
FIT_INTERCEPT_EXACT_ABS = 1e-10
FIT_R2_EXACT_ABS = 1e-12
# The same fit compared with np.polyfit on noisy data (two float64 routes, lstsq vs QR):
# agreement to ~1e3 * u64 relative of the data's spread; bounds 1e-10 (slope, R^2), 1e-9 (intercept).
FIT_TWO_ROUTES_SLOPE_ABS = 1e-10
FIT_TWO_ROUTES_INTERCEPT_ABS = 1e-9
# A forecast exp(c) N^a from such a fit: exp turns the intercept's absolute error into relative
# error, a log N multiplies the slope's: 1e-10 + 25 * 1e-12 ~ 1.3e-10; bound 1e-10 relative for
# the forecast against the independent polyfit forecast and 1e-8 for its error (a difference of
# two nearby numbers, ~100x cancellation).
FORECAST_REL = 1e-10
FORECAST_ERROR_REL = 1e-8
# The nonlinear fit CE = A N^-alpha + E (scipy least squares, stopping tolerances ftol = xtol =
# 1e-12 on parameters of order 1..100) recovers planted, noise-free parameters to <= 1e-9
# relative; bound 1e-6 leaves the optimiser room on flat directions (A and alpha trade off).
NONLINEAR_FIT_REL = 1e-6
# Slopes of metrics from trained or evaluated models whose values are float32 statistics turned
# into float64 (the CLI's and the demo's fits against a fit recomputed in the test from the
# same rounded JSON numbers): both fits see the same float64 inputs, so only the two routes differ.
FIT_FROM_JSON_ABS = 1e-9

# --- float32 token statistics ---------------------------------------------------------------------

# log s = z_y - logsumexp(z) in float32 for one token, against float64, for logits |z| < 32:
# z_y is exact (an input), the max m is exact, sum_j exp(z_j - m) in float32 over V <= 151936
# terms in blocks carries <= (log2 V + 2) u32 ~ 19 u32 = 1.1e-6 relative error (pairwise/blocked
# summation), its log turns that into 1.1e-6 absolute, and z_y - m - log(sum) rounds at
# ulp(32)/2 = 1.9e-6 at most: |error| <= 3e-6. Bound 1e-5 (3x margin).
LOGP_F32_ABS = 1e-5
# The same quantity where the logits themselves are float32 results of a matmul taken along two
# different paths (fused head vs materialised logits, different batch layouts, different device
# counts): each path's logit carries its own rounding, |dz| <= ulp(|z|) ~ 1.9e-6 for |z| < 32
# (d <= 64 products accumulated in float32; the result rounds once at ulp(|z|)/2), on z_y
# and on the logsumexp's dominant terms: |d log s| <= 2 * 1.9e-6 + 2 * 3e-6 ~ 1e-5 per token.
LOGP_TWO_F32_PATHS_ABS = 1e-5


def assert_sum_logp_two_paths_close(actual, expected, count):
    """Per rank: sums of log s over ``count`` tokens taken along two float32 paths differ by at
    most 2 x count x LOGP_TWO_F32_PATHS_ABS: each token's log s moves by at most
    LOGP_TWO_F32_PATHS_ABS, and the device's float32 per-batch sums (blocked, <= 8192 terms of
    one sign, |log s| <= 20) add at most log2(8192) u32 = 7.8e-7 relative, i.e. <= 1.6e-5 per
    token: covered by the factor 2. (Relative bounds do not hold: a rank's sum can be -1.5 while
    each of its tokens carries an absolute error of order 1e-6.)"""
    import numpy as np

    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    bound = 2 * np.asarray(count, np.float64) * LOGP_TWO_F32_PATHS_ABS
    excess = np.abs(actual - expected) - bound
    assert (excess <= 0).all(), (
        f"sum_logp differs beyond 2 x count x {LOGP_TWO_F32_PATHS_ABS:g} at ranks "
        f"{np.flatnonzero(excess > 0).tolist()}: {np.abs(actual - expected)[excess > 0]} vs {bound[excess > 0]}")


# Mean-type statistics (CE, EE, SA, Conf) from float32 log s against float64 NumPy on the same
# logits: CE is a mean of per-token errors <= LOGP_F32_ABS; Conf = log sum_e exp(mean log s over
# rank e) moves by at most the largest per-group mean error; SA = CE - EE + Conf: 2x. Bound 1e-5
# for CE, EE (exact: counts), and Conf; SA carries the sum of two, but the per-token error
# (<= 3e-6 derived above, not the bound 1e-5) keeps the sum below 1e-5.
DECOMPOSITION_F32_ABS = 1e-5
# q_e = Q_e / C with Q_e = exp(mean log s): relative error exp(2 * 1e-5) - 1 = 2e-5; bound 1e-4.
Q_F32_REL = 1e-4
# Word perplexity and bits per byte are exp / linear functions of the summed log-likelihood:
# their relative error is (error of the sum) / (words or bytes) <= LOGP_F32_ABS * tokens/words
# <= 1e-5 * 1 (fewer tokens than words in the fixtures' corpora).
TEXT_METRIC_F32_REL = 1e-5
# Score profiles: sums over tokens of float32 probabilities in [0, 1] (softmax, one rounding
# each, <= 4 u32 relative) against float64: rtol 1e-5 on sums of <= 300 terms (300 u32 = 1.8e-5
# worst case for recursive float32 summation; the device sums blocked, log2(300) u32 ~ 5e-7) and
# atol 1e-6 for entries near 0.
PROBABILITY_SUM_F32_REL = 1e-5
PROBABILITY_SUM_F32_ABS = 1e-6
# A probability mass computed in float32 (sum of top-k probabilities <= 1): <= k u32 above 1.
PROBABILITY_MASS_F32_SLACK = 1e-6
# Per-rank bincount sums of float32 log s on the host (float64) vs the device (float32 segment
# sums of <= 1000 terms of one sign, |log s| <= 10): <= 1000 u32 ~ 6e-5 relative worst case,
# blocked ~ 10 u32 = 6e-7; bound rtol 1e-6 and atol 1e-6 (the host folds the same float32 sums).
SEGMENT_SUM_F32_REL = 1e-6
SEGMENT_SUM_F32_ABS = 1e-6

# --- float32 losses and gradients ---------------------------------------------------------------------

# The proxy loss and its logits gradient against jax.grad of the DESIGN formula, both float32:
# the loss is a weighted mean of log s (error <= LOGP_F32_ABS), the gradient entries
# w (softmax - onehot) with |w| <= 1/N: per entry <= 1e-5 absolute. Equalities between two
# float32 routes that share the logits (aux.ce + lam aux.conf vs the loss, lambda = 0 vs CE):
# a few float32 operations on numbers of order 1: ~10 u32 = 6e-7; bound 1e-6, and 1e-7 for
# gradient entries of order 1/N <= 1/16 (10 u32 / 16 = 4e-8).
LOSS_F32_ABS = 1e-5
LOSS_SHARED_LOGITS_ABS = 1e-6
GRAD_SHARED_LOGITS_ABS = 1e-7
LOSS_F32_REL = 1e-6

# --- model ports --------------------------------------------------------------------------------------

# float32 logits of our port vs transformers' (eager attention, float32) on 272 tokens with the
# project's N(0, 0.1) weights, 2-3 layers: both compute the same float32 graph in different
# orders (attention matmuls, RMS/LayerNorm reductions); per layer the hidden states differ by a
# few ulp of their size (|h| ~ 1-10, ulp ~ 1e-6) per layer, and the head's sum over d <= 96
# products adds sqrt(d) ulp: ~1e-5 on |logits| ~ 10; bound 1e-4.
HF_PARITY_LOGITS_ABS = 1e-4
# Packed documents (segment attention) vs each document alone, sharded meshes vs one device, the
# cuDNN-layout attention vs einsum: the same model, same weights, different reduction orders in
# float32: a few ulp of |logits| <= 8: ulp(8) = 9.5e-7, bound 1e-5 (10 ulp).
SAME_MODEL_LOGITS_ABS = 1e-5
# A mis-mapped weight (the negative control): logits differ by more than 1e-2 (the weights are
# N(0, 0.1): any wrong mapping moves logits by O(0.1)).
MISMAPPED_LOGITS_MIN = 1e-2

# --- training -----------------------------------------------------------------------------------------

# Multi-device training vs one device (tests/test_train_mesh.py): the all-reduced gradients
# are summed in another order; measured at most 2.5e-7 relative over the run (2026-11-23,
# JAX 0.10.2 CPU); bound 2e-6 (8x margin).
TRAIN_MESH_REL = 2e-6
# A metrics row written by the trainer and the same value recomputed from its JSON: float64
# round trip through JSON (repr is exact): equality to 1e-12 covers the float32 -> float64 cast.
JSON_ROUND_TRIP_REL = 1e-12
# Exported model loaded by transformers vs the trained model in memory: HF_PARITY_LOGITS_ABS.
