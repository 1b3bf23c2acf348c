"""Typed adapters over river's ADWIN, Page-Hinkley and KSWIN for one scalar signal stream.

Each adapter is fed one float per prediction (a confidence, an entropy, a margin)
and, after ``update(x)``, reports ``drift_detected`` (read from river's property,
never from ``update``'s return value, which changed across river versions) and a
normalised ``score``: 0 means "nothing to see", 1 means "at the detection
threshold". The defaults suit per-prediction signals that live in ``[0, 1]`` and
sit near one end on clean data (confidence ~0.97, entropy ~0.06 on digits): they
do not fire on long stationary streams, yet catch an abrupt corruption within a
few dozen predictions.

``reset()`` forgets the stream (use it when a new model is swapped in) but keeps
``n_detections``, so the count stays monotone like a Prometheus counter.
"""

from __future__ import annotations

import collections
import math
from typing import Literal

from river import drift
from river.base import DriftDetector


class ScalarDetector:
    """Common interface: ``update(x)``, then read ``drift_detected`` and ``score``."""

    kind: str = "scalar"

    def __init__(self) -> None:
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self._detector = self._build()
        self.n_updates = 0

    def _build(self) -> DriftDetector:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything seen so far (but keep counting detections)."""
        self._reset()

    def update(self, x: float) -> None:
        """Feed one value of the signal."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{self.kind} needs finite values, got {x}")
        self.n_updates += 1
        self._feed(x)
        if self.drift_detected:
            self.n_detections += 1

    def _feed(self, x: float) -> None:
        self._detector.update(x)

    @property
    def drift_detected(self) -> bool:
        """Whether the last ``update`` detected a drift."""
        return bool(self._detector.drift_detected)

    @property
    def score(self) -> float:
        """The detector's statistic over its threshold; >= 1 at detection."""
        raise NotImplementedError  # pragma: no cover - abstract


class ADWINDetector(ScalarDetector):
    """ADWIN (Bifet & Gavalda, 2007): adaptive window, cut when two sub-windows' means differ.

    ``score`` is ADWIN's own cut test evaluated at one split only, the last
    ``recent`` values against the rest of the window: ``|mean_old - mean_recent|``
    over ADWIN's bound. ADWIN checks every bucket boundary, so it can fire while
    this score is still below 1; treat it as a gauge, not the decision.
    ``clock=8`` (river's default is 32) looks for a cut every 8 values: a
    shorter delay for little cost, since the window lives in river's Rust core.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> det = ADWINDetector()
    >>> stream = [rng.gauss(0.95, 0.05) for _ in range(1000)] + [rng.gauss(0.75, 0.15) for _ in range(500)]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1063
    """

    kind = "adwin"

    def __init__(
        self,
        delta: float = 0.0002,
        clock: int = 8,
        min_window_length: int = 5,
        grace_period: int = 30,
        recent: int = 32,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if clock < 1 or min_window_length < 1 or grace_period < 1:
            raise ValueError("clock, min_window_length and grace_period must be >= 1")
        if recent <= min_window_length:
            raise ValueError(f"recent must exceed min_window_length ({min_window_length}), got {recent}")
        self.delta = delta
        self.clock = clock
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.recent = recent
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._recent: collections.deque[float] = collections.deque(maxlen=self.recent)

    def _build(self) -> drift.ADWIN:
        return drift.ADWIN(
            delta=self.delta, clock=self.clock, min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    def _feed(self, x: float) -> None:
        self._detector.update(x)
        self._recent.append(x)

    @property
    def estimation(self) -> float:
        """Mean of the signal over ADWIN's current window."""
        return float(self._detector.estimation)

    @property
    def width(self) -> int:
        return int(self._detector.width)

    @property
    def score(self) -> float:
        width = self._detector.width
        n1 = len(self._recent)
        n0 = width - n1
        if n1 < self.recent or n0 <= self.min_window_length or width < 2:
            return 0.0
        sum1 = math.fsum(self._recent)
        mean_diff = abs((self._detector.total - sum1) / n0 - sum1 / n1)
        variance = self._detector.variance / width
        delta_prime = math.log(2.0 * math.log(width) / self.delta)
        m_recip = 1.0 / (n0 - self.min_window_length + 1) + 1.0 / (n1 - self.min_window_length + 1)
        epsilon = math.sqrt(2.0 * m_recip * variance * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
        return mean_diff / epsilon


class PageHinkleyDetector(ScalarDetector):
    """Page-Hinkley (Page, 1954): a CUSUM of deviations from the running mean.

    Values are divided by ``scale`` before river sees them, so ``delta`` (the
    shift tolerated) and ``threshold`` (the accumulated excess that counts as
    drift) are in units of ``scale``: set it to the signal's standard deviation on
    clean data (`driftwise.drift.monitor.DriftMonitor` does, from the reference statistics);
    0.1 is typical for per-prediction entropy. ``score`` is the excess over the
    threshold. ``mode="up"`` watches only rises, which is what entropy does when
    inputs drift. ``alpha=1`` (no forgetting) keeps it a true CUSUM: with river's
    forgetting factor the sums settle into a noisy steady state and fire now and
    then on stationary data (about once per 50k digits predictions); with
    ``alpha=1`` and these defaults it never fired in 150k.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> det = PageHinkleyDetector(mode="up")
    >>> stream = [abs(rng.gauss(0.0, 0.1)) for _ in range(1000)] + [abs(rng.gauss(0.3, 0.2)) for _ in range(500)]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1020
    """

    kind = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 50,
        delta: float = 0.25,
        threshold: float = 50.0,
        scale: float = 0.1,
        alpha: float = 1.0,
        mode: Literal["up", "down", "both"] = "both",
    ) -> None:
        if min_instances < 1:
            raise ValueError(f"min_instances must be >= 1, got {min_instances}")
        if delta < 0 or threshold <= 0:
            raise ValueError(f"need delta >= 0 and threshold > 0, got delta={delta}, threshold={threshold}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if mode not in ("up", "down", "both"):
            raise ValueError(f"mode must be 'up', 'down' or 'both', got {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.scale = scale
        self.alpha = alpha
        self.mode = mode
        super().__init__()

    def _build(self) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=self.min_instances, delta=self.delta, threshold=self.threshold, alpha=self.alpha,
            mode=self.mode,
        )

    def _feed(self, x: float) -> None:
        self._detector.update(x / self.scale)

    @property
    def score(self) -> float:
        # river keeps the two CUSUM statistics in private attributes; read them, do not copy the algorithm.
        d = self._detector
        if d._x_mean.n < self.min_instances:
            return 0.0
        up = d._sum_increase - d._min_increase
        down = d._max_decrease - d._sum_decrease
        stat = {"up": up, "down": down, "both": max(up, down)}[self.mode]
        return max(0.0, float(stat)) / self.threshold


class KSWINDetector(ScalarDetector):
    """KSWIN (Raab et al., 2020): Kolmogorov-Smirnov test of the newest values against older ones.

    River runs the test on every update, so the per-test ``alpha`` must be tiny
    for a long stream to stay quiet. ``score`` is ``log(p) / log(alpha)``: 1 when
    the p-value reaches ``alpha``. ``seed`` makes the random sub-sampling repeatable.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> det = KSWINDetector(seed=1)
    >>> stream = [rng.gauss(0.95, 0.05) for _ in range(1000)] + [rng.gauss(0.75, 0.15) for _ in range(500)]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1028
    """

    kind = "kswin"

    def __init__(
        self, alpha: float = 1e-5, window_size: int = 200, stat_size: int = 50, subsample: int = 1, seed: int = 0
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if stat_size < 2 or window_size < 2 * stat_size:
            raise ValueError(f"need 2 <= stat_size <= window_size / 2, got {stat_size} and {window_size}")
        self.alpha = alpha
        self.window_size = window_size
        if subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {subsample}")
        self.stat_size = stat_size
        self.subsample = subsample
        self.seed = seed
        super().__init__()

    def _build(self) -> drift.KSWIN:
        return drift.KSWIN(alpha=self.alpha, window_size=self.window_size, stat_size=self.stat_size, seed=self.seed)

    def _reset(self) -> None:
        super()._reset()
        self._fed_last = False

    def _feed(self, x: float) -> None:
        self._fed_last = (self.n_updates - 1) % self.subsample == 0
        if self._fed_last:
            self._detector.update(x)

    @property
    def drift_detected(self) -> bool:
        return self._fed_last and bool(self._detector.drift_detected)

    @property
    def score(self) -> float:
        if not self._detector.drift_detected and len(self._detector.window) < self.window_size:
            return 0.0
        p = float(self._detector.p_value)
        return math.log(max(p, 1e-300)) / math.log(self.alpha)


def make_detector(kind: str, **params: object) -> ScalarDetector:
    """Build an adapter by its ``kind`` (``adwin``, ``page_hinkley``, ``kswin``).

    >>> make_detector("kswin", seed=3).window_size
    200
    """
    classes = {c.kind: c for c in (ADWINDetector, PageHinkleyDetector, KSWINDetector)}
    if kind not in classes:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {sorted(classes)}")
    return classes[kind](**params)  # type: ignore[arg-type]
