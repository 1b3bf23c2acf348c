"""Multivariate drift test on embeddings: MMD between a sliding window and a reference sample.

Scalar signals miss drifts that leave the model confident (it is confidently
wrong). The encoder's embeddings see every change of the inputs, so this
detector compares the distribution of the last ``window`` embeddings with a
sample of reference embeddings saved with the model, using the maximum mean
discrepancy (Gretton et al., 2012) with an RBF kernel whose bandwidth is the
median squared distance in the reference sample.

The threshold is calibrated on the reference data itself: windows are drawn
(bootstrap) from reference rows held out of the sample, their MMD gives the null
distribution, a Gamma law is fitted to it (Gretton et al., 2009) and the
threshold is its ``1 - false_alarm_rate`` quantile. So the false-alarm rate per
test is known instead of guessed.

The window's kernel sums are kept up to date row by row, so each event costs one
kernel row against the window and the reference, ``O((window + sample) * dim)``;
the test itself runs every ``stride`` events.

Why a second, short window: a sliding window of 200 needs a fair share of it
from a new domain before its MMD clears the threshold, 35-90 events on the stream
bench. That is how long a model adapted to the domain just left goes on serving
the next one, often tens of points under the frozen model (leaving a
dead-sensor domain on ImageSegments: 48 points under it for 50 events). The
newest ``short_window`` embeddings are tested too, against their own calibrated
threshold: a short window's null spread is wider, so only a large shift clears
it, but it does so within a couple of dozen events. Either test over its
threshold is drift. The short test costs a ``short_window``-square sum per test.
`SHORT_WINDOW` was chosen offline on development shifts (`driftwise.bench.leave_domain`,
digits, ImageSegments and Phishing): where the adapted model is over 5 points
under the base on the next domain, the median events until confirmation fell
from 60/95/110 to 25/30/25 with no false alarm more in 84,000 in-domain events;
a window of 24 raised one on ImageSegments, 48 and 64 were slower. Pairs of identical embeddings (a
stream that repeats an input) are left out of the within-window mean, both live
and in the calibration, so repeats neither raise nor hide drift.

Pass embeddings of *held-out* data (the calibration split), not the training
set: a model embeds its own training data more tightly than fresh data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from driftwise.drift.signals import compute_signals

_SAME = 1e-8  # squared distance, relative to the bandwidth, below which two embeddings count as one input
_MAX_POOL = 2048  # calibration rows at most: their kernel matrix is held in memory
SHORT_WINDOW = 32
"""The short window the references made by `reference_statistics` carry (see the module docstring)."""


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def _distinct_mean(k: np.ndarray, distinct: np.ndarray) -> float:
    """Mean of ``k`` over off-diagonal pairs flagged distinct (upper triangle is enough, k is symmetric)."""
    n = distinct.sum()
    return float((k * distinct).sum() / n) if n else 1.0


class EmbeddingDriftDetector:
    """Sliding-window MMD test of recent embeddings against a reference sample.

    Parameters
    ----------
    window
        Number of most recent embeddings compared with the reference.
    stride
        Run the test every ``stride`` events (once the window is full).
    sample_size
        Reference rows kept as the comparison sample (the rest calibrate the threshold).
    false_alarm_rate
        Probability that one test on stationary data exceeds the threshold. The
        Gamma fit holds up: asked for 0.05 and 0.01, independent windows exceeded
        it 5-7% and 1-2% of the time. Tests ``stride`` events apart share most of
        their window, so 50k events are far fewer than 50k / stride chances.
    n_null
        Bootstrap windows drawn to estimate the null distribution.
    short_window
        The newest embeddings tested on their own, against their own threshold (``None``: no short test).
    seed
        Seeds the reference split and the bootstrap.

    ``drift_detected`` says whether the latest test was over the threshold (it
    stays so while the drift lasts); ``n_detections`` counts the tests that went
    from under to over it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> det = EmbeddingDriftDetector(window=100, stride=10).fit(rng.normal(size=(600, 8)))
    >>> stream = np.r_[rng.normal(size=(500, 8)), rng.normal(size=(300, 8)) + 0.25]
    >>> for i in range(0, len(stream), 10):
    ...     det.update_many(stream[i:i + 10])
    ...     if det.drift_detected:
    ...         print(f"drift at index {i + 9}, score {det.score:.1f}")
    ...         break
    drift at index 559, score 1.1
    """

    def __init__(
        self,
        window: int = 200,
        stride: int = 10,
        sample_size: int = 512,
        false_alarm_rate: float = 1e-6,
        n_null: int = 300,
        seed: int = 0,
        short_window: int | None = None,
    ) -> None:
        if window < 10:
            raise ValueError(f"window must be >= 10, got {window}")
        if short_window is not None and not 10 <= short_window < window:
            raise ValueError(f"short_window must be in [10, window), got {short_window}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if sample_size < 10:
            raise ValueError(f"sample_size must be >= 10, got {sample_size}")
        if not 0.0 < false_alarm_rate < 0.5:
            raise ValueError(f"false_alarm_rate must be in (0, 0.5), got {false_alarm_rate}")
        if n_null < 20:
            raise ValueError(f"n_null must be >= 20, got {n_null}")
        self.window = window
        self.stride = stride
        self.sample_size = sample_size
        self.false_alarm_rate = false_alarm_rate
        self.n_null = n_null
        self.seed = seed
        self.short_window = short_window
        self.n_detections = 0
        self.reference: np.ndarray | None = None
        self.bandwidth = float("nan")
        self.threshold = float("nan")
        self.short_threshold = float("nan")

    # -- reference ---------------------------------------------------------------------------------------------
    def fit(
        self, reference_embeddings: np.ndarray, window: int | None = None, seed: int | None = None
    ) -> "EmbeddingDriftDetector":
        """Split the reference into a comparison sample and a calibration pool; calibrate the threshold.

        ``window`` and ``seed``, when given, replace the constructor's values.
        """
        if window is not None:
            if window < 10 or (self.short_window is not None and window <= self.short_window):
                raise ValueError(f"window must be >= 10 and over short_window, got {window}")
            self.window = window
        if seed is not None:
            self.seed = seed
        x = np.asarray(reference_embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) < 64:
            raise ValueError(f"reference embeddings must have shape (n >= 64, dim), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("reference embeddings must be finite")
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(x))
        m = min(self.sample_size, len(x) // 2)
        sample, pool = x[perm[:m]], x[perm[m:m + _MAX_POOL]]
        d2 = _sq_dists(sample, sample)
        bandwidth = float(np.median(d2[np.triu_indices(m, 1)]))
        self._set_reference(sample, bandwidth if bandwidth > 0 else 1.0, threshold=float("nan"))
        self.threshold = self._calibrate(pool, rng, self.window)
        if self.short_window is not None:
            self.short_threshold = self._calibrate(pool, rng, self.short_window)
        return self

    def _set_reference(self, sample: np.ndarray, bandwidth: float, threshold: float,
                       short_threshold: float = float("nan")) -> None:
        self.reference = sample
        self.bandwidth = bandwidth
        self.threshold = threshold
        self.short_threshold = short_threshold
        k, distinct = self._kernel(sample, sample)
        self._k_ref = _distinct_mean(k, np.triu(distinct, 1))
        self._reset()

    def _kernel(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = _sq_dists(a, b)
        return np.exp(-d2 / self.bandwidth), d2 > _SAME * self.bandwidth

    def _mmd2(self, k_win: float, k_cross: float, w: int) -> float:
        """Biased (V-statistic) MMD^2 of a window of ``w`` distinct points, from its mean kernel values."""
        m = len(self.reference)
        return (1 + (w - 1) * k_win) / w + (1 + (m - 1) * self._k_ref) / m - 2.0 * k_cross

    def _calibrate(self, pool: np.ndarray, rng: np.random.Generator, w: int) -> float:
        """The ``1 - false_alarm_rate`` quantile of windows of ``w`` drawn from ``pool`` (a Gamma fit)."""
        k_pool, distinct = self._kernel(pool, pool)
        cross = self._kernel(pool, self.reference)[0].mean(axis=1)
        null = np.empty(self.n_null)
        for b in range(self.n_null):
            idx = rng.integers(0, len(pool), size=w)
            pair = np.triu(distinct[np.ix_(idx, idx)], 1)
            null[b] = self._mmd2(_distinct_mean(k_pool[np.ix_(idx, idx)], pair), float(cross[idx].mean()), w)
        mean, var = float(null.mean()), float(null.var(ddof=1))
        if not (mean > 0 and var > 0):
            raise ValueError("reference embeddings are (nearly) all the same: no null distribution to calibrate on")
        if w == self.window:
            self.null_mean, self.null_std = mean, var**0.5
        return float(stats.gamma.ppf(1.0 - self.false_alarm_rate, a=mean * mean / var, scale=var / mean))

    def reference_arrays(self) -> dict[str, np.ndarray]:
        """What `from_reference` needs, as float32 arrays (safetensors-ready)."""
        self._check_fitted()
        f32 = lambda v: np.asarray([v], dtype=np.float32)  # noqa: E731
        return {
            "embedding_sample": self.reference.astype(np.float32),
            "mmd_bandwidth": f32(self.bandwidth),
            "mmd_threshold": f32(self.threshold),
            "mmd_window": f32(self.window),
            "mmd_false_alarm_rate": f32(self.false_alarm_rate),
            **({"mmd_short_window": f32(self.short_window), "mmd_short_threshold": f32(self.short_threshold)}
               if self.short_window is not None else {}),
        }

    @classmethod
    def from_reference(cls, arrays: dict[str, np.ndarray], stride: int = 10) -> "EmbeddingDriftDetector":
        """Rebuild a calibrated detector from the arrays saved with a model version."""
        missing = {"embedding_sample", "mmd_bandwidth", "mmd_threshold", "mmd_window"} - set(arrays)
        if missing:
            raise ValueError(f"reference arrays lack {sorted(missing)}")
        sample = np.asarray(arrays["embedding_sample"], dtype=np.float64)
        first = lambda key: float(np.asarray(arrays[key]).ravel()[0])  # noqa: E731
        far = first("mmd_false_alarm_rate") if "mmd_false_alarm_rate" in arrays else 1e-6
        short = "mmd_short_window" in arrays and "mmd_short_threshold" in arrays  # references from before have none
        det = cls(window=int(first("mmd_window")), stride=stride, sample_size=len(sample), false_alarm_rate=far,
                  short_window=int(first("mmd_short_window")) if short else None)
        det._set_reference(sample, first("mmd_bandwidth"), first("mmd_threshold"),
                           first("mmd_short_threshold") if short else float("nan"))
        return det

    # -- stream ------------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.reference is None:
            raise RuntimeError("EmbeddingDriftDetector needs fit() or from_reference() first")

    def _reset(self) -> None:
        w, dim = self.window, self.reference.shape[1]
        self._rows = np.zeros((w, dim))
        self._k = np.zeros((w, w))  # kernel between window slots
        self._distinct = np.zeros((w, w), dtype=bool)  # off-diagonal pairs of different inputs
        self._cross = np.zeros(w)  # each slot's mean kernel value against the reference
        self._filled = 0
        self._next = 0
        self._since_test = 0
        self.n_events = 0
        self.statistic = 0.0
        self.short_statistic = 0.0
        self.drift_detected = False
        self.last_detection_index: int | None = None

    def reset(self) -> None:
        """Forget the window (keep the reference and ``n_detections``)."""
        self._check_fitted()
        self._reset()

    def update_many(self, embeddings: np.ndarray) -> None:
        """Add a batch ``(n, dim)`` of embeddings, in stream order; test every ``stride`` events."""
        self._check_fitted()
        z = np.asarray(embeddings, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.reference.shape[1]:
            raise ValueError(f"embeddings must have shape (n, {self.reference.shape[1]}), got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("embeddings must be finite")
        self.n_events += len(z)
        self._since_test += len(z)
        z = z[-self.window:]
        slots = (self._next + np.arange(len(z))) % self.window
        self._rows[slots] = z
        self._filled = min(self.window, self._filled + len(z))
        self._next = int((self._next + len(z)) % self.window)
        self._cross[slots] = self._kernel(z, self.reference)[0].mean(axis=1)
        k, distinct = self._kernel(z, self._rows)
        self._k[slots], self._k[:, slots] = k, k.T
        self._distinct[slots], self._distinct[:, slots] = distinct, distinct.T
        first_test = self.window if self.short_window is None else self.short_window
        if self._filled >= first_test and self._since_test >= self.stride:
            self._test()

    def _test(self) -> None:
        self._since_test = 0
        if self._filled == self.window:
            pairs = np.triu(self._distinct, 1)
            self.statistic = self._mmd2(_distinct_mean(self._k, pairs), float(self._cross.mean()), self.window)
        over = self._filled == self.window and self.statistic > self.threshold
        if self.short_window is not None:
            newest = (self._next - 1 - np.arange(self.short_window)) % self.window
            k, pairs = self._k[np.ix_(newest, newest)], np.triu(self._distinct[np.ix_(newest, newest)], 1)
            self.short_statistic = self._mmd2(_distinct_mean(k, pairs), float(self._cross[newest].mean()),
                                              self.short_window)
            over = over or self.short_statistic > self.short_threshold
        was = self.drift_detected
        self.drift_detected = bool(over)
        if self.drift_detected and not was:
            self.n_detections += 1
            self.last_detection_index = self.n_events - 1

    @property
    def score(self) -> float:
        """Latest MMD^2 over its calibrated threshold, the larger of the two windows' (>= 1 means drift); 0 before
        the first test."""
        if self.reference is None or not np.isfinite(self.threshold):
            return 0.0
        long = self.statistic / self.threshold
        return max(long, self.short_statistic / self.short_threshold) if np.isfinite(self.short_threshold) else long


CONFIDENCE_LEVELS = np.linspace(0.0, 1.0, 21)


def reference_confidence(reference: Mapping[str, np.ndarray] | None) -> float | None:
    """A model's mean confidence on source data, from its reference statistics (None when it has none)."""
    if not reference or "confidence_mean" not in reference:
        return None
    return float(np.asarray(reference["confidence_mean"]).ravel()[0])


def reference_statistics(
    embeddings: np.ndarray,
    confidences: np.ndarray,
    *,
    window: int = 200,
    sample_size: int = 512,
    false_alarm_rate: float = 1e-6,
    n_null: int = 300,
    seed: int = 0,
    short_window: int | None = SHORT_WINDOW,
) -> dict[str, np.ndarray]:
    """The reference statistics saved with a model version: named float32 arrays.

    ``embeddings`` ``(n, dim)`` and ``confidences`` ``(n,)`` come from the model
    on held-out clean data. ``confidences`` may also be the ``(n, k)``
    probabilities, and then the entropy and margin statistics are saved too
    (the monitor scales its Page-Hinkley test by them).

    Keys: ``embedding_sample`` ``(m, dim)``, ``embedding_mean``/``embedding_std``
    ``(dim,)``, the ``mmd_*`` calibration (``(1,)`` each, see
    `EmbeddingDriftDetector`), ``confidence_quantiles`` at `CONFIDENCE_LEVELS`,
    and ``<signal>_mean``/``<signal>_std`` ``(1,)`` per available signal; from probabilities also
    ``probability_mean`` ``(k,)``, the prior the model predicts on these inputs (`driftwise.drift.prior_drift`).

    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet([0.2] * 4, size=300)
    >>> ref = reference_statistics(rng.normal(size=(300, 16)), p, window=50)
    >>> sorted(ref)[:4], ref["embedding_sample"].shape, ref["mmd_threshold"].dtype
    (['confidence_mean', 'confidence_quantiles', 'confidence_std', 'embedding_mean'], (150, 16), dtype('float32'))
    >>> EmbeddingDriftDetector.from_reference(ref).threshold == float(ref["mmd_threshold"][0])
    True
    """
    z = np.asarray(embeddings, dtype=np.float64)
    c = np.asarray(confidences, dtype=np.float64)
    if c.ndim not in (1, 2) or len(c) != len(z):
        raise ValueError(f"confidences must be (n,) or (n, k) with n = {len(z)} rows, got {c.shape}")
    detector = EmbeddingDriftDetector(
        window=window, sample_size=sample_size, false_alarm_rate=false_alarm_rate, n_null=n_null, seed=seed,
        short_window=short_window if short_window is not None and short_window < window else None,  # else no use
    ).fit(z)
    arrays = detector.reference_arrays()
    arrays["embedding_mean"] = z.mean(axis=0)
    arrays["embedding_std"] = z.std(axis=0)
    signals = {"confidence": c}
    if c.ndim == 2:
        s = compute_signals(c)
        signals = {"confidence": s.confidence, "entropy": s.entropy, "margin": s.margin}
        arrays["probability_mean"] = c.mean(axis=0)
    elif not np.all((c >= 0) & (c <= 1)):
        raise ValueError("confidences must lie in [0, 1]")
    arrays["confidence_quantiles"] = np.quantile(signals["confidence"], CONFIDENCE_LEVELS)
    for name, values in signals.items():
        arrays[f"{name}_mean"] = np.asarray([values.mean()])
        arrays[f"{name}_std"] = np.asarray([values.std()])
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}


DEPENDENCE_LEVEL = 0.1
"""Mean autocorrelation under which consecutive rows count as independent (`dependence_length`)."""
DEPENDENCE_SEGMENTS = 4
"""Consecutive parts a sample is cut into to estimate its dependence (`dependence_length`)."""
MIN_BLOCKS = 8
"""Blocks a sample keeps at least in the permutation test: the longest block is its length over this."""


def dependence_length(z: np.ndarray, max_lag: int) -> int:
    """How many consecutive rows of ``z`` ``(n, d)``, in arrival order, go together: the first lag at which their
    autocorrelation falls under `DEPENDENCE_LEVEL`, at most ``max_lag``; 1 for independent rows.

    Why: a permutation test exchanges rows, which is only right when they are exchangeable. Readings
    through a slow sensor (a first-order lag) are alike for several events in a row; two adjacent
    windows of one such stream then differ more than rows shuffled together do, and the test
    says "moved" where nothing did (on a fresh-data trial's sluggish sensors, interims were made
    again every 128 events, each on a window of a few independent readings).

    The autocorrelation is the median over `DEPENDENCE_SEGMENTS` consecutive parts, each
    centred on its own mean: a change of domain inside the sample (the inputs since a candidate's
    window, half of them the next domain's) is a step, not a dependence, and must not make the
    test blind to that very change (over the whole sample it did: on a fresh-data trial a
    candidate made for one fault was promoted 115 events into the next, p 0.36).

    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(size=(256, 4))
    >>> slow = noise.copy()
    >>> for t in range(1, 256):
    ...     slow[t] = 0.75 * slow[t - 1] + 0.25 * noise[t]
    >>> dependence_length(noise, 32), dependence_length(slow, 32), dependence_length(np.r_[noise[:128], noise[128:] + 5], 32)
    (1, 7, 1)
    """
    if max_lag < 2:
        return 1
    centred = [p - p.mean(axis=0) for p in np.array_split(np.asarray(z, dtype=np.float64), DEPENDENCE_SEGMENTS)
               if len(p) > max_lag + 1]
    parts = [(p, float(np.sum(p * p))) for p in centred]
    parts = [(p, total) for p, total in parts if total > 0.0]
    if not parts:
        return 1
    for lag in range(1, max_lag + 1):
        if np.median([float(np.sum(p[lag:] * p[:-lag])) / t for p, t in parts]) < DEPENDENCE_LEVEL:
            return lag
    return max_lag


def permutation_block(*samples: np.ndarray) -> int:
    """Consecutive rows a permutation test exchanges together: 1 when every sample's rows are independent
    (`dependence_length` 1), else twice the longest dependence, at most the shortest sample over `MIN_BLOCKS`.

    >>> rng = np.random.default_rng(0)
    >>> permutation_block(rng.normal(size=(128, 4)), rng.normal(size=(64, 4)))
    1
    """
    longest = max(1, min(len(z) for z in samples) // MIN_BLOCKS)
    together = max(dependence_length(z, longest) for z in samples)
    return 1 if together == 1 else min(2 * together, longest)


def mmd_permutation_test(a: np.ndarray, b: np.ndarray, *, permutations: int = 200, seed: int = 0,
                         block: int | None = None) -> float:
    """p-value that samples ``a`` ``(n, d)`` and ``b`` ``(m, d)`` come from one distribution (RBF-kernel MMD).

    The bandwidth is the median squared distance of the pooled sample; the null
    distribution comes from ``permutations`` random relabellings of the pool, so
    no threshold has to be calibrated: it answers "has the stream moved on since
    this window?" for any two sets of embeddings.

    Rows are taken in arrival order and exchanged in blocks of ``block`` consecutive
    rows: by default single rows when both samples' are independent (`dependence_length`
    1), else blocks twice the longer dependence, so that rows a block apart are nearly
    independent, and at least `MIN_BLOCKS` a sample. A sample's oldest rows that do not
    fill a block are left out. On two adjacent windows of 128 rows of one stationary
    first-order lag (8 dimensions, 100 draws each), single rows say "moved" at p < 0.01
    for 60-100% of draws as the lag's coefficient goes from 0.5 to 0.9; the blocks for
    6-22%, and still find half a standard deviation's move in 70-100%.

    >>> rng = np.random.default_rng(0)
    >>> same = mmd_permutation_test(rng.normal(size=(100, 4)), rng.normal(size=(100, 4)))
    >>> moved = mmd_permutation_test(rng.normal(size=(100, 4)), rng.normal(0.5, 1.0, size=(100, 4)))
    >>> same > 0.05, moved < 0.01
    (True, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"both samples need at least 2 rows, got {len(a)} and {len(b)}")
    if block is None:
        block = permutation_block(a, b)
    if block < 1 or block > min(len(a), len(b)):
        raise ValueError(f"block must be in [1, {min(len(a), len(b))}], got {block}")
    a, b = a[len(a) % block:], b[len(b) % block:]
    pool = np.concatenate([a, b])
    d2 = _sq_dists(pool, pool)
    bandwidth = float(np.median(d2[np.triu_indices(len(pool), 1)])) or 1.0
    k = np.exp(-d2 / bandwidth)
    n, m = len(a), len(b)
    within = np.arange(block)  # a block's rows: a's blocks, then b's, each ``block`` consecutive rows of the pool
    rng = np.random.default_rng(seed)
    # Column 0 is the observed split, the others relabellings; every MMD^2 from one matrix product.
    first = np.zeros((len(pool), permutations + 1))
    first[:n, 0] = 1.0
    for j in range(1, permutations + 1):
        chosen = rng.permutation(len(pool) // block)[:n // block]
        first[(chosen[:, None] * block + within).ravel(), j] = 1.0
    k_first = k @ first
    within_first = np.einsum("ij,ij->j", first, k_first)  # sum of k over pairs inside the first sample
    with_all = k_first.sum(axis=0)  # pairs (first, anyone)
    across = with_all - within_first
    within_second = k.sum() - within_first - 2.0 * across
    mmd2 = within_first / n**2 + within_second / m**2 - 2.0 * across / (n * m)
    exceed = int(np.sum(mmd2[1:] >= mmd2[0] - 1e-12))
    return float((1 + exceed) / (1 + permutations))
