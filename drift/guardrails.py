"""The checks a candidate must pass before it may serve, each one recorded.

A self-trained model can get worse while looking better: it can forget the task
(anchor accuracy), fall into predicting a few classes (collapse), teach itself a
different labelling of inputs the current model was sure about (agreement), or
learn from too little (yield). Every check returns its value, its threshold and
whether it passed, so the report can go into the candidate's manifest as it is.

Why collapse is judged against evidence, not a fixed share: one class holding
more than half of a window is normal for a binary or skewed problem. The
evidence for a class's share is what the current model predicts on the same
window and the prior: the class shares of the labeled data it was trained under
(`driftwise.models.classifier.Classifier.class_prior`, moved by any label-shift correction),
or of the feedback labels once there are enough. Not the anchors': they hold up to
20 of each class, so on a skewed problem their shares are nearly equal (on
river's Waveform drawn to 80/15/5 they put a 15% class at 43%, which let a
candidate that moved it to 36% of its predictions through). ``class_shift`` lets each class
gain over the larger of the two only what sampling noise of a window of ``n``
inputs explains (``z`` binomial standard errors) plus a small slack for the
errors an adapted model fixes; so the tolerance scales with the reference share
and the number of classes, and shrinks as the window grows.

Why true labels outrank pseudo-labels: when feedback labels the candidate was
not trained on are at hand (at least ``min_feedback_samples``), the candidate
must beat the current model on them (``feedback_accuracy``), and the checks that
stand in for labels (pseudo-label yield, agreement with the current model's
confident guesses, confidence gain) are reported but no longer decide. After a
label-changing drift the current model's confident guesses are the errors the
labels were asked for to correct; a candidate that learnt from the labels must
disagree with them.

Why ``same_domain``: a candidate takes seconds to make, and the stream may move
on meanwhile. The inputs that arrived after its window closed (``recent_x``) are
compared with the window in the current model's embedding space (an MMD
permutation test that a burst of one class cannot fool, `driftwise.drift.same_domain`);
if they plainly differ, the domain the candidate was made for has gone, and serving
it would put a specialised model on a domain it never saw (on the held-out stream
bench, seed 1, such a candidate served the next domain 18 points under the frozen
model for 500 events). It is refused as stale.

Why the anchors are scored "in their own domain": the candidate's BatchNorm
statistics describe the drifted inputs, and the anchors are clean. Scoring clean
anchors through drifted statistics would punish exactly the adaptation we want.
So both models are scored on the anchors with BatchNorm re-estimated on the
anchors, which measures what the weights still know of the original task.

Why the anchor check is a paired test: both models answer the same anchors, and
with a few dozen of them one anchor is two points. A fixed margin of one point
refused a candidate for one anchor lost net (on held-out Waveform runs, 4
refinements that run offline beat the frozen model by 2-12 points). So a larger
drop than ``anchor_margin`` refuses only when McNemar's exact test says the anchors
the candidate lost outnumber those it gained by more than chance
(`chance_anchor_loss`): a drop that is noise on 47 anchors is evidence on 1,000.

Examples
--------
>>> import torch
>>> from driftwise.models.classifier import Classifier
>>> from driftwise.models.config import ModelConfig
>>> torch.manual_seed(0) and None
>>> model = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3)).eval()
>>> x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
>>> y = np.arange(60) % 3
>>> report = evaluate_candidate(model, model, window_x=x, anchors_x=x, anchors_y=y, pseudo_x=x[:0],
...                             pseudo_y=y[:0])
>>> [c.name for c in report.checks]  # doctest: +NORMALIZE_WHITESPACE
['anchor_accuracy', 'anchor_accuracy_vs_baseline', 'class_entropy', 'class_shift', 'temporal_correlation',
 'same_domain', 'pseudo_label_yield', 'agreement', 'confidence_gain']
>>> report.passed, "confidence_gain: 0 < 0.001" in report.reasons  # the same model gains nothing
(False, True)
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from driftwise.drift.adapter import embed, predict_proba, served_prior
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.same_domain import model_moved_p
from driftwise.models.classifier import Classifier
from driftwise.models.train import recalibrate_batchnorm


@dataclass(frozen=True)
class GuardrailConfig:
    """Thresholds of every check (defaults are those the benchmark was validated with)."""

    anchor_margin: float = 0.01
    """Anchor accuracy may always drop this much against the current model; more only within the anchors' noise
    (``anchor_alpha``)."""
    anchor_alpha: float = 0.05
    """One-sided level of McNemar's exact test on the anchors (`chance_anchor_loss`): a larger drop refuses the
    candidate only when the anchors it lost outnumber those it gained by more than chance explains at this level."""
    baseline_anchor_accuracy: float | None = None
    """If set (the first version's anchor accuracy), the candidate must also stay within the margin of it,
    so many small drops cannot add up over a long stream."""
    min_class_entropy_ratio: float = 0.8
    """Entropy of the candidate's predicted-class distribution on the window, relative to the lower of the current
    model's and the prior's (anchor labels): a skewed prior is evidence for a low entropy, not a collapse."""
    class_shift_z: float = 3.0
    """Binomial standard errors, ``sqrt(q(1-q)/n)``, a class's share may rise over its reference share ``q`` by the
    chance of which inputs fell in a window of ``n``; 3 keeps false refusals near 0.1% per class."""
    class_shift_slack: float = 0.05
    """Share a class of the uniform share ``1/k`` may gain beyond that noise (a rarer class in proportion, see
    `class_shift`): an adapted model fixes some of the current model's errors, which moves a few percent of the
    window between classes. A collapse moves far more."""
    min_pseudo_yield: float = 0.02
    """Share of the window the current model is confident about (>= ``confidence_threshold``)."""
    confidence_threshold: float = 0.9
    """What counts as confident for the yield (match the pseudo-label buffer's threshold). At 0.99 a calibrated
    model is confident about almost nothing under drift, and the agreement check has too few samples."""
    min_agreement: float = 0.9
    """Agreement of candidate and current on the held-out confident pseudo-labels."""
    min_confident_samples: int = 10
    """Fewer held-out pseudo-labels than this cannot vouch for the candidate: the agreement check fails."""
    min_confidence_gain: float = 0.001
    """Mean confidence on the window must rise by at least this much."""
    min_refinement_confidence_gain: float = -0.01
    """The same floor for a refinement (``evaluate_candidate(refinement=True)``), judged against the candidate it
    would replace: that one was self-trained on the same domain already, so neither is expected to be the more
    confident, and a refinement is refused only if it is plainly less so (a point of mean confidence). At 0.001,
    refinements were refused for rises of -0.008 to +0.0007: on the development digits (48e545b) rotation's beat
    the candidate serving on by 2.3 points on its phase's next 1,000 events; the others were judged on too few."""
    min_feedback_samples: int = 30
    """Held-out feedback labels from which ``feedback_accuracy`` decides instead of the pseudo-label checks."""
    feedback_margin: float = 0.0
    """The candidate's accuracy on the held-out feedback labels must exceed the current model's by more than this."""
    min_same_domain_p: float = 0.01
    """p-value of the MMD permutation test (window against the inputs since) below which the candidate is stale:
    about 1 candidate in 100 refused though its domain stayed (the test's 200 permutations put its smallest p-value
    at 1/201, so this cannot be below that)."""
    min_recent_samples: int = 64
    """Fewer inputs since the window than this: too few to tell, ``same_domain`` passes."""
    max_temporal_correlation: float = 0.2
    """Largest temporal correlation of the current model's predictions over the window, in arrival order
    (`temporal_correlation`): classes arriving in runs make a window whose statistics are a burst's, not a
    domain's. On the held-out stream bench in class runs of 50 (seed 0), candidates made on such windows were
    promoted and served 10 points under the frozen model."""

    def __post_init__(self) -> None:
        for name in ("anchor_margin", "anchor_alpha", "min_class_entropy_ratio", "max_temporal_correlation", "class_shift_slack", "min_pseudo_yield",
                     "confidence_threshold", "min_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.baseline_anchor_accuracy is not None and not 0.0 <= self.baseline_anchor_accuracy <= 1.0:
            raise ValueError(f"baseline_anchor_accuracy must be in [0, 1], got {self.baseline_anchor_accuracy}")
        if self.class_shift_z < 0.0:
            raise ValueError(f"class_shift_z must be >= 0, got {self.class_shift_z}")
        if self.min_feedback_samples < 1 or not 0.0 <= self.feedback_margin <= 1.0:
            raise ValueError(f"min_feedback_samples must be >= 1 and feedback_margin in [0, 1], got "
                             f"{self.min_feedback_samples}, {self.feedback_margin}")
        if not 1 / 201 < self.min_same_domain_p < 1.0:
            raise ValueError(f"min_same_domain_p must be in (1/201, 1), got {self.min_same_domain_p}")
        if self.min_confident_samples < 0:
            raise ValueError(f"min_confident_samples must be >= 0, got {self.min_confident_samples}")
        for name in ("min_confidence_gain", "min_refinement_confidence_gain"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [-1, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Check:
    """One guardrail: ``passed`` is ``value >= threshold`` (``value <= threshold`` when ``upper``)."""

    name: str
    value: float
    threshold: float
    passed: bool
    upper: bool = False
    detail: str = ""

    def reason(self) -> str:
        text = f"{self.name}: {self.value:.4g} {'>' if self.upper else '<'} {self.threshold:.4g}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class GuardrailReport:
    """All checks, in order; `passed` only when every one passed."""

    checks: list[Check] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def stale(self) -> bool:
        """Refused by ``same_domain``: the inputs since the window differ from it, its domain has gone."""
        return any(c.name == "same_domain" and not c.passed for c in self.checks)

    @property
    def domain_left(self) -> bool:
        """Refused because the stream has left the window's domain: the inputs since it differ from it (`stale`),
        or the latest do (``latest_domain``: a change has just begun)."""
        return self.stale or any(c.name == "latest_domain" and not c.passed for c in self.checks)

    @property
    def window_unfit(self) -> bool:
        """Refused for its window rather than its model: the stream moved on while it was made (`stale`,
        ``latest_domain``), or nothing failed but the order of the window's classes (``temporal_correlation``, a
        burst). Such a refusal says nothing of whether the drift can be learnt, so it does not count towards
        "labels needed"."""
        return self.domain_left or {c.name for c in self.checks if not c.passed} == {"temporal_correlation"}

    def replace(self, check: Check) -> None:
        """Put ``check`` in the place of the check of its name: the same question asked again on newer evidence."""
        self.checks = [check if c.name == check.name else c for c in self.checks]

    @property
    def reasons(self) -> list[str]:
        """One line per failed check, for logs, metrics and the manifest."""
        return [c.reason() for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": [asdict(c) for c in self.checks],
                "stats": dict(self.stats)}


def anchor_correct(model: Classifier, anchors_x: np.ndarray, anchors_y: np.ndarray) -> np.ndarray:
    """Per anchor, whether ``model`` gets it right with BatchNorm re-estimated on the anchors (see the module)."""
    if len(anchors_y) == 0:
        return np.zeros(0, dtype=bool)
    probe = copy.deepcopy(model).cpu()
    recalibrate_batchnorm(probe, torch.as_tensor(np.asarray(anchors_x, dtype=np.float32)))
    return predict_proba(probe, anchors_x).argmax(1) == np.asarray(anchors_y)


def anchor_accuracy(model: Classifier, anchors_x: np.ndarray, anchors_y: np.ndarray) -> float:
    """Accuracy on the anchors with BatchNorm re-estimated on them (see the module docstring)."""
    return _share(anchor_correct(model, anchors_x, anchors_y))


def _share(correct: np.ndarray) -> float:
    """The share of ``correct`` that is true; NaN for none at all (no anchors)."""
    return float(correct.mean()) if len(correct) else float("nan")


def chance_anchor_loss(discordant: int, alpha: float) -> int:
    """The most anchors, net, a candidate may lose to the current model by chance: McNemar's exact test.

    Both models answer the same anchors, so only the ``discordant`` ones (right for one
    model, wrong for the other) tell them apart; if neither is better, each discordant
    anchor is the candidate's loss with probability 1/2. A net loss ``lost - gained``
    up to the returned value has a one-sided p-value of at least ``alpha``. A fixed
    margin cannot do this: with 47 anchors (Waveform's, 10% of 1,500 rows labeled)
    one anchor is 2.1 points, and a margin of 1 point refused refinements over a
    single anchor (held-out tabular runs on a12fd8b: 4 of Waveform's 5 refusals).

    >>> [chance_anchor_loss(d, 0.05) for d in (0, 1, 4, 5, 10, 20, 100)]
    [0, 1, 4, 3, 6, 8, 16]
    """
    if discordant < 0 or not 0.0 < alpha < 0.5:
        raise ValueError(f"discordant must be >= 0 and alpha in (0, 0.5), got {discordant}, {alpha}")
    lost, tail = discordant, 1  # tail: P(Binomial(discordant, 1/2) >= lost) * 2**discordant
    while tail / 2 ** discordant < alpha:  # ends by lost = discordant / 2, where the tail is >= 1/2
        lost -= 1
        tail += math.comb(discordant, lost)
    return 2 * lost - discordant  # `lost` is the most lost anchors with a tail probability >= alpha


def temporal_correlation(predictions: np.ndarray, starts: Sequence[int] = ()) -> float:
    """How much more often consecutive predictions agree than independent arrivals would.

    0 for arrivals in random order, near 1 for long runs of one class. Scaled so
    that an i.i.d. stream scores 0 whatever its class shares:
    ``(P(same as previous) - sum p_c^2) / (1 - sum p_c^2)``.

    ``starts``: where a new domain begins in the window (`driftwise.drift.change_point`). Each
    part is then judged against its own class shares and the pair across a start is not
    counted (a domain whose every input the model put in one class, then the next domain,
    is not a run of that class); the parts' excess agreements and their most possible are
    summed. A part of one class adds no evidence; when no part has two, the window is judged whole.

    >>> same = np.array([0] * 50 + [1] * 50 + [2] * 50)  # classes in runs of 50
    >>> mixed = np.random.default_rng(0).integers(0, 3, size=150)
    >>> temporal_correlation(same) > 0.5, abs(temporal_correlation(mixed)) < 0.1
    (True, True)
    >>> after_a_change = np.r_[[0] * 20, mixed]  # a domain all predicted 0, then the next
    >>> temporal_correlation(after_a_change) > 0.1, abs(temporal_correlation(after_a_change, [20])) < 0.1
    (True, True)
    """
    y = np.asarray(predictions)
    excess = possible = 0.0
    for part in np.split(y, [s for s in starts if 0 < s < len(y)]):
        if len(part) < 2:
            continue
        shares = np.bincount(part) / len(part)
        chance = float((shares ** 2).sum())
        excess += float((part[1:] == part[:-1]).sum()) - chance * (len(part) - 1)
        possible += (1.0 - chance) * (len(part) - 1)
    if possible <= 1e-12:  # one class in every part
        return temporal_correlation(y) if len(starts) else 0.0  # whole: no evidence of order either way
    return excess / possible


def first_occurrences(inputs: np.ndarray) -> np.ndarray:
    """Indices, in arrival order, of each distinct input's first arrival.

    A client that asks again about an instance it sent before (a retry, a dashboard
    polling the latest event) repeats an input, not a class: its repeat follows it
    closely and would read as a run.

    >>> first_occurrences(np.array([[1, 2], [3, 4], [1, 2], [5, 6]]))
    array([0, 1, 3])
    """
    rows = np.asarray(inputs)
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(rows.reshape(len(rows), -1), axis=0, return_index=True)
    return np.sort(first)


def correlation_check(predictions: np.ndarray, max_correlation: float, inputs: np.ndarray | None = None,
                      starts: Sequence[int] = ()) -> Check:
    """The ``temporal_correlation`` check of predictions in arrival order (candidates and interims alike), with
    the domains' ``starts`` in it if any.

    With ``inputs`` (those predicted, in the same order), repeats of an input are left out
    (`first_occurrences`): in the soak, a client re-sending the latest event at 20/s beside
    50 events/s put the correlation at 0.24-0.31 on inputs that arrived in random order, and
    every interim and candidate was refused.
    """
    predictions = np.asarray(predictions)
    if inputs is not None:
        kept = first_occurrences(inputs)
        predictions = predictions[kept]
        starts = [int(i) for i in np.searchsorted(kept, starts)]
    correlation = temporal_correlation(predictions, starts)
    refused = correlation > max_correlation
    return Check("temporal_correlation", correlation, max_correlation, not refused, upper=True,
                 detail="classes arrive in runs" if refused else "")


def class_distribution(predictions: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(predictions, minlength=num_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def class_shift(candidate: np.ndarray, current: np.ndarray, prior: np.ndarray | None, n: int, *,
                z: float = 3.0, slack: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the share the candidate gained over the evidence, and the gain allowed; shapes ``(k,)``.

    The reference share ``q`` of a class is the larger of the current model's and the prior's (``None``: no
    prior, the current model's alone). The allowed gain is ``z * sqrt(q(1-q)/n) + slack * min(1, k q)``:
    binomial noise, plus the slack a class of the uniform share ``1/k`` may gain, in proportion for a rarer
    class. A fixed slack let a 5% class of three more than double (to 12% of the predictions of a candidate
    that served 6 points under the frozen model); an error fixed moves a rare class's share by a few of its
    own percent, not by the majority's. Only gains count: a collapse onto some classes shows as a rise of
    those classes.

    Examples
    --------
    >>> current, prior = np.array([0.58, 0.42]), np.array([0.5, 0.5])
    >>> gain, allowed = class_shift(np.array([0.62, 0.38]), current, prior, n=500)
    >>> bool((gain <= allowed).all())  # a binary 60/40 window, kept by the candidate
    True
    >>> gain, allowed = class_shift(np.array([0.97, 0.03]), current, prior, n=500)
    >>> gain.round(2).tolist(), allowed.round(3).tolist()  # the collapse onto class 0 is refused
    ([0.39, -0.47], [0.116, 0.117])
    """
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    reference = current if prior is None else np.maximum(current, prior)
    allowed = z * np.sqrt(reference * (1.0 - reference) / n) + slack * np.minimum(1.0, len(reference) * reference)
    return candidate - reference, allowed


def class_shift_check(candidate: np.ndarray, current: np.ndarray, prior: np.ndarray, n: int, *, z: float,
                      slack: float, current_name: str = "current") -> Check:
    """``class_shift`` as a `Check`, judged on the class closest to (or furthest past) its limit (`class_shift`);
    ``current_name`` names the model compared with in its detail (candidates: the current model; interims: the
    base)."""
    gain, allowed = class_shift(candidate, current, prior, n, z=z, slack=slack)
    c = int(np.argmax(gain - allowed))
    return Check("class_shift", float(gain[c]), float(allowed[c]), bool(gain[c] <= allowed[c]), upper=True,
                 detail=f"class {c}: {candidate[c]:.1%} of {n} predictions; {current_name} {current[c]:.1%}, "
                        f"prior {prior[c]:.1%}")


def normalized_entropy(distribution: np.ndarray) -> float:
    """Entropy divided by ``log(k)``: 1 for uniform, 0 when one class takes everything."""
    p = distribution[distribution > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(distribution)))


SAME_DOMAIN_SAMPLE = 256  # inputs of each side the permutation test compares at most (the latest ones)
LATEST_DOMAIN_INPUTS = 64
"""The latest inputs tested for a change that has just begun: by `latest_domain_check` and by the service's alarm
check against a serving candidate, where they were chosen (`driftwise.service.adaptation`)."""
LATEST_DOMAIN_P = 0.05
"""p-value under which those inputs have left the window's domain: read leniently, a missed change costing more
than a false alarm."""


def latest_domain_check(current: Classifier, window_x: np.ndarray, latest_x: np.ndarray) -> Check:
    """``latest_domain``: are the latest `LATEST_DOMAIN_INPUTS` inputs still of the window's domain? Asked of a
    refinement just before it would serve (`driftwise.service.adaptation`).

    ``same_domain`` compares the window with every input since, and a change that began a few dozen inputs ago
    is diluted among the window's own. On the development digits (8c322c3) a refinement for gaussian noise
    passed it and served 81 events into rotation; a drift was confirmed against it 527 events later (its
    reference, taken as it was promoted, held rotation too), the worst 500 events 1.4 points under the frozen
    model. The plain test (a change sends the predictions to a few classes, evidence class matching discards)
    at p < 0.05: a refinement refused in its own domain costs little, the candidate it would replace serves on.
    Not for first candidates: refused, the base or an interim serves instead.
    """
    if len(latest_x) < LATEST_DOMAIN_INPUTS:
        return Check("latest_domain", 1.0, LATEST_DOMAIN_P, True,
                     detail=f"{len(latest_x)} inputs since the window, too few to tell")
    p = mmd_permutation_test(embed(current, window_x[-SAME_DOMAIN_SAMPLE:]),
                             embed(current, latest_x[-LATEST_DOMAIN_INPUTS:]))
    moved = p < LATEST_DOMAIN_P
    return Check("latest_domain", p, LATEST_DOMAIN_P, not moved,
                 detail=f"the latest {LATEST_DOMAIN_INPUTS} inputs differ from its window" if moved else "")


def same_domain_check(current: Classifier, window_x: np.ndarray, recent_x: np.ndarray | None,
                      cfg: GuardrailConfig) -> Check:
    """``same_domain``: has the stream moved on since the window? (see the module docstring)."""
    n = 0 if recent_x is None else len(recent_x)
    if n < cfg.min_recent_samples:
        return Check("same_domain", 1.0, cfg.min_same_domain_p, True,
                     detail=f"{n} inputs since the window, too few to tell")
    a, b = window_x[-SAME_DOMAIN_SAMPLE:], recent_x[-SAME_DOMAIN_SAMPLE:]
    p = model_moved_p(current, embed(current, a), embed(current, b))
    stale = p < cfg.min_same_domain_p
    return Check("same_domain", p, cfg.min_same_domain_p, not stale,
                 detail=f"the {n} inputs since the window differ from it: the domain moved on" if stale else "")


def feedback_holdout(x: np.ndarray | None, y: np.ndarray | None, fraction: float = 0.3, seed: int = 0
                     ) -> tuple[tuple[np.ndarray | None, np.ndarray | None], tuple[np.ndarray | None, np.ndarray | None]]:
    """Feedback labels split into (to train on, to judge the candidate by); ``(None, None)`` halves when absent.

    >>> (tx, ty), (hx, hy) = feedback_holdout(np.zeros((10, 2)), np.arange(10))
    >>> len(ty), len(hy), sorted(np.concatenate([ty, hy]).tolist()) == list(range(10))
    (7, 3, True)
    """
    if x is None or y is None or len(y) == 0:
        return (x, y), (None, None)
    order = np.random.default_rng(seed).permutation(len(y))
    hold, train = order[:int(round(fraction * len(y)))], order[int(round(fraction * len(y))):]
    return (x[train], y[train]), (x[hold], y[hold])


def evaluate_candidate(
    current: Classifier,
    candidate: Classifier,
    *,
    window_x: np.ndarray,
    anchors_x: np.ndarray,
    anchors_y: np.ndarray,
    pseudo_x: np.ndarray,
    pseudo_y: np.ndarray,
    config: GuardrailConfig | None = None,
    feedback_x: np.ndarray | None = None,
    feedback_y: np.ndarray | None = None,
    recent_x: np.ndarray | None = None,
    refinement: bool = False,
) -> GuardrailReport:
    """Run every check; ``pseudo_x/pseudo_y`` should be confident pseudo-labels the candidate was *not* trained on,
    ``feedback_x/feedback_y`` true labels it was not trained on either (see the module: they outrank them), and
    ``recent_x`` the inputs that arrived after the window (``same_domain``). A ``refinement`` (``current`` is an
    adapted candidate of the same domain) has its own confidence floor (``min_refinement_confidence_gain``)."""
    cfg = config or GuardrailConfig()
    k = current.config.num_classes
    if len(window_x) == 0:
        raise ValueError("window_x is empty: guardrails need the drifted inputs")
    report = GuardrailReport()
    add = report.checks.append

    current_ok = anchor_correct(current, anchors_x, anchors_y)
    candidate_ok = anchor_correct(candidate, anchors_x, anchors_y)
    has_anchors = len(anchors_y) > 0
    current_anchor, candidate_anchor = _share(current_ok), _share(candidate_ok)
    lost, gained = int((current_ok & ~candidate_ok).sum()), int((~current_ok & candidate_ok).sum())
    allowed = max(cfg.anchor_margin, chance_anchor_loss(lost + gained, cfg.anchor_alpha) / max(len(anchors_y), 1))
    floor = current_anchor - allowed
    add(Check("anchor_accuracy", candidate_anchor, floor, has_anchors and candidate_anchor >= floor - 1e-12,
              detail=f"{lost} lost, {gained} gained of {len(anchors_y)} anchors" if has_anchors else "no anchors"))
    if cfg.baseline_anchor_accuracy is not None:
        floor = cfg.baseline_anchor_accuracy - cfg.anchor_margin
        add(Check("anchor_accuracy_vs_baseline", candidate_anchor, floor, has_anchors and candidate_anchor >= floor))
    else:
        add(Check("anchor_accuracy_vs_baseline", candidate_anchor, 0.0, True, detail="no baseline configured"))

    p_cur, p_cand = predict_proba(current, window_x), predict_proba(candidate, window_x)
    dist_cur, dist_cand = class_distribution(p_cur.argmax(1), k), class_distribution(p_cand.argmax(1), k)
    n_feedback = 0 if feedback_y is None else len(feedback_y)
    labeled = n_feedback >= cfg.min_feedback_samples
    if labeled:  # the newest evidence of the prior
        labels = np.asarray(feedback_y, dtype=np.int64)
        prior = class_distribution(labels[(labels >= 0) & (labels < k)], k)
    else:  # what the current model was trained under (its labeled data, not the anchors: those are capped per class)
        prior = served_prior(current)
    h_cur, h_cand = normalized_entropy(dist_cur), normalized_entropy(dist_cand)
    h_prior = normalized_entropy(prior)
    floor = cfg.min_class_entropy_ratio * min(h_cur, h_prior)
    add(Check("class_entropy", h_cand, floor, h_cand >= floor,
              detail="relative to the prior's" if h_prior < h_cur else ""))
    add(class_shift_check(dist_cand, dist_cur, prior, len(window_x), z=cfg.class_shift_z,
                          slack=cfg.class_shift_slack))

    add(correlation_check(p_cur.argmax(1), cfg.max_temporal_correlation, window_x))
    add(same_domain_check(current, window_x, recent_x, cfg))

    if labeled:
        fb_cur = float((predict_proba(current, feedback_x).argmax(1) == np.asarray(feedback_y)).mean())
        fb_cand = float((predict_proba(candidate, feedback_x).argmax(1) == np.asarray(feedback_y)).mean())
        add(Check("feedback_accuracy", fb_cand, fb_cur + cfg.feedback_margin, fb_cand > fb_cur + cfg.feedback_margin,
                  detail=f"on {n_feedback} held-out feedback labels; current model {fb_cur:.3f}"))
    superseded = "superseded by feedback labels" if labeled else ""

    def pseudo_check(name: str, value: float, threshold: float, passed: bool, detail: str = "") -> Check:
        return Check(name, value, threshold, passed or labeled, detail=superseded or detail)

    pseudo_yield = float((p_cur.max(1) >= cfg.confidence_threshold).mean())
    add(pseudo_check("pseudo_label_yield", pseudo_yield, cfg.min_pseudo_yield, pseudo_yield >= cfg.min_pseudo_yield))

    n_confident = len(pseudo_y)
    agreement = float("nan")
    if n_confident:
        agreement = float((predict_proba(candidate, pseudo_x).argmax(1) == np.asarray(pseudo_y)).mean())
    enough = n_confident >= max(cfg.min_confident_samples, 1)
    add(pseudo_check("agreement", agreement if n_confident else 0.0, cfg.min_agreement,
                     enough and agreement >= cfg.min_agreement,
                     detail="" if enough else f"only {n_confident} held-out confident samples, "
                                              f"need {cfg.min_confident_samples}"))

    conf_cur, conf_cand = float(p_cur.max(1).mean()), float(p_cand.max(1).mean())
    gain = conf_cand - conf_cur
    floor = cfg.min_refinement_confidence_gain if refinement else cfg.min_confidence_gain
    add(pseudo_check("confidence_gain", gain, floor, gain >= floor, detail="a refinement" if refinement else ""))

    report.stats = {
        "anchor_accuracy_current": current_anchor, "anchor_accuracy_candidate": candidate_anchor,
        "class_entropy_current": h_cur, "class_entropy_candidate": h_cand,
        "class_entropy_prior": h_prior,
        "mean_confidence_current": conf_cur, "mean_confidence_candidate": conf_cand,
        "n_window": float(len(window_x)), "n_confident_holdout": float(n_confident),
        "n_feedback_holdout": float(n_feedback),
    }
    return report
