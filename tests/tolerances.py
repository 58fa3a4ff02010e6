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
# Parameter counts stored as integers: N = int(n) moves log N by <= 1 / n, which moves the points
# of a planted law log M = c + a log n by <= |a| / n off the line in log N, and the fitted slope
# over a log N spread S by <= 2 |a| / (n S). n >= 1e6, S >= 4.6, |a| <= 1: <= 4.4e-7; the
# bootstrap fits of tests/test_fit_intervals.py (n >= 1e5, S = 6.9, |a| = 0.1): <= 2.9e-7. Bound
# 1e-6 on slopes planted in n and fitted on int(n); R^2 stays within (1e-6)^2 x points of 1:
# bound 1e-9.
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
# The relative part of those absolute comparisons: one float32 rounding of the compared value,
# u32 = 6.0e-8 relative; bound 1e-7 (np.testing.assert_allclose's default rtol, which these
# comparisons carried implicitly; written out, the value unchanged).
ONE_F32_ROUNDING_REL = 1e-7

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
# round-trips exactly): 1e-12 covers float64 reassociation of sums of <= 1e4 terms (1e4 u64);
# word perplexity exp(-sum / words) carries the sum's relative error times |sum / words| (<= 10).
JSON_ROUND_TRIP_REL = 1e-12
# The learning-rate schedule's float32 value vs the float64 formula: a few float32 operations,
# <= 10 u32 = 6e-7 relative: bound 1e-6 (pytest.approx's default, written out).
LR_F32_REL = 1e-6
# The trainer's float32 logits vs compute_logits of the same model on the same batch (two jitted
# routes, one under value_and_grad): measured 2026-12-02 (2-core CPU, JAX 0.10.2) max |diff|
# 3.0e-8 at |logits| <= 0.4 (the tiny model at initialisation, ulp(0.4) = 3e-8); bound 1e-6
# (33 ulp). Used by tests/test_train_run.py (logged proxy loss vs NumPy on the first batch).
LOGITS_TWO_ROUTES_ABS = 1e-6
# Exported model loaded by transformers vs the trained model in memory: HF_PARITY_LOGITS_ABS.
# A slope from two float64 routes on the same JSON numbers, relative (the paper-models run, two
# models): as FIT_TWO_ROUTES_WIDE_ABS, relative to a slope of order 0.1. The same bound serves the
# other quantities recomputed with np.polyfit from the same numbers: leave-one-model-out slopes
# and R^2, percentile intervals of per-replicate slopes and R^2 and of their paired differences
# (tests/test_fit_intervals.py), and the sd of two seeds' slopes (tests/test_train_demo.py,
# |s0 - s1| / sqrt 2, a difference with <= 100x cancellation of slopes ~ 1e-14 apart: ~1e-12).
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


# --- fixtures' preconditions (thresholds the inputs must meet for the bounds above) ---------------

# The float32 bounds (LOGP_F32_ABS, LOGP_TWO_F32_PATHS_ABS, ...) are derived for |z| < 32
# (ulp(32)/2 = 1.9e-6); the evaluation fixture asserts its logits stay below.
FIXTURE_LOGIT_MAX_ABS = 32.0
# Ranks are compared exactly only away from float32 near-ties: on the evaluation fixture our
# float32 logits and transformers' differ by about 1.7e-6 of their spread (measured 8e-6 at a
# logit std of 4.6, tests/eval_fixtures.py; docs/measurements.md), so the order of a target and
# a competitor can flip only when they lie within 2 x 8e-6 = 1.6e-5; the fixture asserts every
# competitor is farther than 2e-5 from its target.
FIXTURE_NEAR_TIE_GAP = 2e-5
# A comparison of logits at HF_PARITY_LOGITS_ABS (or SAME_MODEL_LOGITS_ABS) says something only
# when the logits are far larger than the bound: their std must exceed 0.25 (2500x 1e-4); the
# fixtures' N(0, 0.1) weights give std ~ 0.3 .. 5.
REFERENCE_LOGITS_STD_MIN = 0.25


# --- statistical thresholds ---------------------------------------------------------------------

# Moments of the bootstrap's Poisson(1) weights over n = 2e5 draws, each within 5 standard errors
# of its value (se of the mean 1/sqrt n; of the variance sqrt(3/n), the fourth central moment of
# Poisson(1) being 4; of P(0) sqrt(e^-1 (1 - e^-1) / n)): for a correct sampler each check fails
# with probability 5.7e-7 (normal two-sided tail at 5 sigma), the three together < 2e-6 per run.
POISSON_MOMENT_SIGMAS = 5
# Chi-square goodness of fit of the same weights to Poisson(1) over 0..4 and >= 5: a correct
# sampler's p-value is uniform, so it falls below 1e-4 in 1e-4 of runs.
CHI_SQUARE_P_MIN = 1e-4
# Coverage of intervals over simulated studies: the accepted counts are the binomial(studies,
# level) quantiles at COVERAGE_TAIL and 1 - COVERAGE_TAIL, so a correct procedure lands outside
# with probability <= 2 x 5e-4 = 1e-3 per check (three checks in tests/test_fit_intervals.py:
# <= 3e-3 per run); for 100 studies at 95% that accepts 87..100, and a naive +-1 se interval
# (~63% coverage) lies below 87 with probability < 1e-9.
COVERAGE_TAIL = 5e-4
# The standard deviation of initialised weights (init_model, seed 0) against the scheme's: the
# sample sd of n N(0, s^2) draws has relative se 1/sqrt(2n): the embedding (4096 x 128, n =
# 524288) 9.8e-4, checked within 2% (20 se); the MLP and output kernels (128 x 512 and 128 x 128,
# n >= 16384) <= 5.5e-3, checked within 5% (>= 9 se). A wrong scheme misses by far more (GPT-2's
# residual factor 1/sqrt(2 n_layer) = 0.35 missing: 2.8x).
INIT_STD_EMBEDDING_REL = 0.02
INIT_STD_KERNEL_REL = 0.05
# Rows whose rank differs between the tiled fused path and one XLA matmul (whose CPU dot rounds
# differently) on continuous random float32 data: only rows whose target has a competitor within
# twice the largest logit difference can flip. Measured 2026-12-02 (2-core CPU, JAX 0.10.2) on the
# test's problem (seed 11, T = 256, V = 5003): largest difference 1.9e-6, 6 of 256 rows have a
# competitor that close, 0 rows flipped; bound 1% of the rows (2 rows).
NEAR_TIE_RANK_FLIPS_MAX_SHARE = 0.01


# --- bootstrap statistics (float64) -------------------------------------------------------------

# Weighted per-rank sums of log s (the bootstrap accumulator) against a token-by-token loop over
# the resampled corpus, or against the same tokens folded in other batches, orders, merges or
# after a save and load: float64 sums of n <= 2000 terms of one sign (30-60 documents of < 40
# tokens, Poisson(1) weights; measured n <= 1230): <= n u64 = 2.2e-13 relative; bound
# F64_SUM_REL, with an absolute floor F64_SUM_FLOOR_ABS = 1e-12 that only matters for sums below
# 1 nat, where n u64 relative is below 1e-12 absolute too. Measured 2026-12-02 over 20 seeds x 40
# replicates: 2.4e-15 relative.
F64_SUM_FLOOR_ABS = 1e-12
# CE, EE, SA, Conf and EE/CE of each replicate (weighted sums, then logs and divisions) against
# np_decompose of the corpus with document d repeated w_bd times: each sum within 2.2e-13
# relative (above); CE (a division of such sums, |CE| <= ~4) and Conf (a log-sum-exp of per-rank
# means of |value| <= ~10) within 2.2e-13 x 10 = 2.2e-12 absolute in the worst case, EE (counts
# only) a few u64; SA = CE - EE + Conf within ~4.4e-12. The fixture's values are >= 0.1 (measured:
# CE >= 1.7, EE >= 1.8, SA >= 0.30, Conf >= 0.10), so 1e-10 relative (>= 1e-11 absolute) covers
# the worst case; the floor of 1e-12 absolute adds nothing for such values. Measured 2026-12-02
# over 20 seeds x 40 replicates: <= 1.8e-15 absolute, 1.7e-15 relative (SA): > 1e4x margin.
REPLICATE_METRICS_TWO_ROUTES_REL = 1e-10
REPLICATE_METRICS_TWO_ROUTES_ABS = 1e-12
# decompose_replicates of one unweighted row vs np_decompose on the same tokens: the same
# per-rank sums (bincount vs np_decompose's own, n <= 1200 terms: 1.3e-13) and a few float64
# operations after; bound 1e-12 relative. Measured 2026-12-02 over 20 seeds: <= 6.5e-16.
DECOMPOSITION_F64_TWO_ROUTES_REL = 1e-12
# percentile_interval (np.percentile at 50 (1 - level), whose float64 value 4.999999999999999
# for level 0.9 moves the interpolation weight by ~1e-15) vs np.percentile at [5, 95]: a few
# u64; bound kept at pytest.approx's default, 1e-6 relative, written out. Measured 2026-12-02:
# 2.5e-16.
PERCENTILE_TWO_ROUTES_REL = 1e-6
# Per-replicate CE, EE, SA, Conf, EE/CE of one corpus evaluated with 8-row first-fit packed
# batches and with 3-row unpacked batches (`rce-jax eval --bootstrap 50`): the document weights
# are the same, only the float32 log s of the two row layouts differ (LOGP_TWO_F32_PATHS_ABS per
# token). Measured (tests/test_bootstrap.py, 2026-12-02, 2-core CPU, JAX 0.10.2): up to 7e-7
# nats on Conf, whose log-sum-exp is led by ranks of one or two tokens; bound 5e-6 nats (7x).
REPLICATES_TWO_BATCHINGS_ABS = 5e-6


# --- scaling-fit intervals (float64) ------------------------------------------------------------

# fit_power_law's slope vs scipy.stats.linregress on 7 noisy points: both solve the same centred
# least squares (kappa ~ 8), ~ kappa n u64 = 6e-15 relative to the slope; bound 1e-12. Its
# standard error sqrt(SSR / (n - 2) / Sxx): residuals ~ 0.05 computed from values ~ 20 carry
# ~ 20 u64 / 0.05 = 4e-14 relative, squared and summed ~ 1e-13; bound 1e-10. The interval's ends
# slope -+ t se (the same t): within the se's error relative to |slope -+ t se|, which can lie near
# 0; bound kept at pytest.approx's default, 1e-6 relative, written out. Measured 2026-12-02 over
# 200 seeds: slope 2.2e-16, se 3.3e-14, ends 6.3e-14 relative.
FIT_SLOPE_VS_SCIPY_REL = 1e-12
FIT_SE_VS_SCIPY_REL = 1e-10
FIT_INTERVAL_VS_SCIPY_REL = 1e-6


# --- the harness comparison and the kernels on a mesh (float32) ---------------------------------

# `rce-jax eval` vs lm_eval's own HFLM on the same tiny models (torch and XLA float32 logits,
# different summation orders): relative difference of the summed log-likelihood and of word and
# byte perplexity and bits per byte. Measured 2026-12-02 (2-core CPU, JAX 0.10.2, torch 2.13,
# lm_eval 0.4.13; docs/harness.md): sum log-likelihood <= 1.4e-8, word perplexity <= 1.4e-7;
# bound 2e-6 (14x; about 17 float32 epsilons), while one token scored differently (|log p| ~ 5
# on ~300 tokens) moves the sum by ~1e-2.
HARNESS_F32_REL = 2e-6
# The proxy losses with the Pallas TPU kernels (interpret mode) on 8 simulated devices vs one:
# float32 sums in another order (per-device partial sums, then psum). Measured 2026-12-02 (seed 7,
# 2-core CPU, JAX 0.10.2): 7.2e-8 relative on the loss, 5.1e-7 on the gradients (max abs
# difference over max abs value); bound 4e-6 (~8x the worst).
KERNELS_MESH_REL = 4e-6


# --- figures ------------------------------------------------------------------------------------

# Major ticks of a log axis lie at decades: log10 of matplotlib's float64 tick positions is an
# integer to a few u64 (~1e-15), while a tick off the decades (at 2..9 x 10^k) is >= log10(10/9)
# = 0.046 from one. Kept at np.allclose's defaults, written out: 1e-5 relative, 1e-8 absolute
# (<= 7e-5 at the axis's decades 4..7).
DECADE_TICK_REL = 1e-5
DECADE_TICK_ABS = 1e-8
