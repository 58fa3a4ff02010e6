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

# --- least squares (float64) ---------------------------------------------------------------------------

# Fitting log M = c + a log N by least squares on points exactly on the line, n <= 12 points with
# log N spread over [14, 23] (N in 1e6..1e10): the condition number of [1, log N] is about
# 2 mean/spread ~ 8, so the slope comes back within ~ 8 n u64 ~ 1e-14 of its value and the
# intercept (mean log M - a mean log N, mean log N ~ 20) within ~ 2e-13; R^2 = 1 - SSR/SST with
# SSR ~ 0 to ~ 1e-14. Bounds: slope 1e-12, intercept 1e-10, R^2 1e-12 (all >= 100x margin); a
# prediction exp(c + a log N) carries the exponent's absolute error as relative error: 1e-10.
FIT_SLOPE_EXACT_ABS = 1e-12
FIT_INTERCEPT_EXACT_ABS = 1e-10
FIT_R2_EXACT_ABS = 1e-12
FIT_PREDICT_EXACT_REL = 1e-10
# Forecasts of held-out models from a law planted exactly (the extrapolation experiment): the
# forecast's relative error is the exponent's absolute error, ~ 2e-13 + 23 x 1e-14 ~ 4e-13:
# bound 1e-12. A forecast from a fit of the irreducible-term law (scipy least squares, stopping
# at ftol = xtol = 1e-12-level steps): bound 1e-9.
EXACT_LAW_FORECAST_REL = 1e-12
NONLINEAR_FORECAST_REL = 1e-9
# The same least-squares fit by two float64 routes (ours vs np.polyfit, or a fit recomputed in the
# test from the same JSON numbers), on noisy data: each route's error is ~ kappa n u64 relative to
# the data's spread (~1e-14 in slope); bounds 1e-10 (slope, R^2), 1e-9 (intercept, and slopes of
# metrics spanning a wider range); a forecast from such a fit 1e-10 relative, and its error
# (forecast minus truth, a difference with up to 100x cancellation) 1e-8 relative.
FIT_TWO_ROUTES_SLOPE_ABS = 1e-10
FIT_TWO_ROUTES_INTERCEPT_ABS = 1e-9
FIT_TWO_ROUTES_WIDE_ABS = 1e-9
FORECAST_TWO_ROUTES_REL = 1e-10
FORECAST_ERROR_TWO_ROUTES_REL = 1e-8
# Parameter counts stored as integers: N = int(n) moves log N by <= 0.5 / 1e6 = 5e-7 (n >= 1e6),
# which moves a fitted slope over a log N spread >= 4.6 by <= 5e-7 x 2 / 4.6 ~ 2.2e-7: bound 1e-6
# on slopes planted in n and fitted on int(n); R^2 stays within (5e-7)^2 x n of 1: bound 1e-9.
FIT_INTEGER_N_SLOPE_ABS = 1e-6
FIT_INTEGER_N_R2_ABS = 1e-9
# The nonlinear fit CE = A N^-alpha + E (scipy least squares) on planted, noise-free points:
# parameters to 1e-6 relative (the optimiser stops when steps fall below its tolerances; A and
# alpha trade off along a flat valley, so the bound is looser than the data's float64 precision).
NONLINEAR_FIT_REL = 1e-6
NONLINEAR_FIT_R2_ABS = 1e-10
# Planted laws that a method cannot represent must miss by more than these (negative controls):
# the planted offsets (|d| >= 0.8, curvature of N^-b over two decades) move forecasts by >= 1e-3
# (CE power law on EE + d) and >= 1e-4 (the others).
MISSES_BY_MORE_THAN_CE_LAW = 1e-3
MISSES_BY_MORE_THAN = 1e-4
# |slope - slope_CE| and similar quantities recomputed by the same float64 operations on the same
# numbers (one side read back from JSON, whose repr round-trips exactly): <= 1 ulp of a value < 8.
F64_SAME_ROUTE_ABS = 1e-15

# --- float32 token statistics ---------------------------------------------------------------------

# A two-entry softmax with |z| <= 1 (the hand-checked case): z_y - m - log(1 + e^-1) rounds
# twice at ulp(1.3)/2 ~ 6e-8 and log1p/exp add a few u32: <= 5e-7; bound 1e-6.
LOGP_F32_UNIT_LOGITS_ABS = 1e-6
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
# Measured 2026-12-02 (2-core CPU, JAX 0.10.2) on test_eval's fixture, fused batch 4 vs
# materialised logits with one window per row, batch 3: the largest per-rank |d sum_logp| / count
# is 5.72e-6 (rank 214, one token; 245 ranks occupied, largest |d sum_logp| 8.58e-6); the
# per-rank bound of assert_sum_logp_two_paths_close, 2 x count x 1e-5, leaves a 3.5x margin.
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


# EE and p from counts alone (float64): EE = -sum_e p_e log p_e over R <= 9000 ranks, each term
# in [0, 0.37] with relative error a few u64: <= 9000 x 0.37 x 4 u64 ~ 1.5e-12 worst case,
# blocked summation far less; bound 1e-12. The same slack bounds EE <= log R.
EE_FROM_COUNTS_ABS = 1e-12
# Mean-type statistics (CE, EE, SA, Conf) from float32 log s against float64 NumPy on the same
# logits: CE is a mean of per-token errors <= LOGP_F32_ABS; Conf = log sum_e exp(mean log s over
# rank e) moves by at most the largest per-group mean error; SA = CE - EE + Conf: 2x. Bound 1e-5
# for CE, EE (exact: counts), and Conf; SA carries the sum of two, but the per-token error
# (<= 3e-6 derived above, not the bound 1e-5) keeps the sum below 1e-5.
DECOMPOSITION_F32_ABS = 1e-5
# q_e = Q_e / C with Q_e = exp(mean log s): relative error exp(2 * 1e-5) - 1 = 2e-5; bound 1e-4,
# with an absolute floor of 1e-12 for q_e that are themselves below 1e-8.
Q_F32_REL = 1e-4
Q_F32_FLOOR_ABS = 1e-12
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

# The proxy loss and its logits gradient against jax.grad of the formula of docs/design.md#2-the-proxy-loss, both float32:
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
# orders (attention matmuls, RMS/LayerNorm reductions). Measured 2026-12-02 (2-core CPU, JAX
# 0.10.2, torch 2.13, transformers 5.24) over the 12 variants of hf_tiny: max |diff| 7.75e-6
# (llama_plain; the others 1.1e-6 .. 3.6e-6) at max |logit| <= 4.9; bound 1e-4 (13x margin).
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
# The trainer's periodic evaluation vs `rce-jax eval` of the exported model on the same windows:
# the same float32 statistics folded in float64 in the same order, written through JSON (repr
# round-trips exactly): 1e-12 covers float64 reassociation of sums of <= 1e4 terms (1e4 u64).
JSON_ROUND_TRIP_REL = 1e-12
# The learning-rate schedule's float32 value vs the float64 formula: a few float32 operations,
# <= 10 u32 = 6e-7 relative: bound 1e-6 (pytest.approx's default, written out).
LR_F32_REL = 1e-6
# The trainer's logged loss vs ce + lam conf from the same float32 step: a few float32
# operations on values of order 1-10: 1e-6 relative and absolute.
LOGGED_LOSS_F32_REL = 1e-6
# Exported model loaded by transformers vs the trained model in memory: HF_PARITY_LOGITS_ABS.
# A slope from two float64 routes on the same JSON numbers, relative (the paper-models run, two
# models): as FIT_TWO_ROUTES_WIDE_ABS, relative to a slope of order 0.1.
FIT_TWO_ROUTES_REL = 1e-9
# experiments/bench_eval.py: `rce-jax eval`'s CE, EE, SA, Conf vs the benchmark's own torch
# computation (transformers' float32 logits, torch log-softmax, per-rank bincount) on the same
# windows of a tiny float32 model: the logits of the two implementations differ by a few ulp
# (HF_PARITY_LOGITS_ABS's measurement: <= 7.75e-6) and the means over >= 2048 tokens average
# those differences. Measured 2026-12-02 (2-core CPU, JAX 0.10.2, torch 2.13): CE 1.13e-8, EE 0,
# SA 1.3e-9, Conf 1.0e-8 on 2774 tokens; bound 1e-6 (88x margin).
DECOMPOSITION_TWO_IMPLEMENTATIONS_ABS = 1e-6
# bfloat16 models: our mean |logit error| against transformers' float32 logits over that of
# transformers itself run in bfloat16 (both round weights and activations to bf16, u = 2**-8,
# and keep softmax and norms in float32; they round at different places). Measured 2026-12-02
# (JAX 0.10.2, torch 2.13) on the four variants of test_models_bf16: ratios 0.932 .. 1.029;
# bound 1.25.
BF16_ERROR_RATIO_MAX = 1.25


# --- bootstrap replicates ------------------------------------------------------------------------

# Per-replicate CE, EE, SA, Conf of one corpus evaluated on 1 and on 8 simulated devices: the
# document weights are the same (a hash of the document, not of its row), so only the float32
# log s of the two layouts differ, as the rank sums do (LOGP_TWO_F32_PATHS_ABS per token);
# measured 2.4e-7 relative on CE and 2.8e-8 absolute on SA and Conf, which lie near zero.
# Bounds: 1e-6 relative plus 1e-6 nats absolute (>= 4x and >= 35x margins).
REPLICATES_TWO_LAYOUTS_REL = 1e-6
REPLICATES_TWO_LAYOUTS_ABS = 1e-6
