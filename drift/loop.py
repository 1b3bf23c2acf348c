"""DriftLoop: the closed loop's decisions, written once for the service and the benchmark.

The loop owns the drift monitor, the pseudo-label buffer, the window of recent
inputs and the adaptation policy. It decides; it never trains or swaps. The
caller predicts a batch, calls `DriftLoop.update`, then `DriftLoop.decide`, acts
on the `Action` (adapt, fall back to the base model, roll back) and reports what
happened: `DriftLoop.record_result` after an adaptation, `DriftLoop.serve` after
any swap. The clock is injected: the service passes the wall clock, the
benchmark a simulated one, so both run the same decisions.

Choices validated on the benchmark's validation split:

* A newly confirmed drift clears the buffer: what it holds predates the drift.
* Every buffer pseudo-label is held out of training (``holdout_fraction=1.0``;
  the adapter labels the window itself), so the guardrails' agreement check is
  measured on labels the candidate was not trained on.
* A rejected candidate resets the monitor: the drift must be confirmed afresh
  before the next try (it may have ended meanwhile).
* A promoted candidate's reference statistics come from distinct recent inputs
  it was not trained on (those that arrived after its window closed), or from the
  whole recent window when too few did (`DriftLoop.reference_inputs`).
* As soon as a drift is confirmed and ``normalize_after`` more inputs have
  arrived, the served weights with BatchNorm re-estimated on the latest
  ``normalize_window`` inputs serve in the meantime (`Action.NORMALIZE`,
  `driftwise.drift.normalize`): milliseconds instead of a window and seconds of training.
  It is an interim, not a candidate: the monitor is not reset, the buffer is
  kept, and the self-trained candidate must beat it through the guardrails. It
  counts as the base: a new drift asks for a new interim, made from the base and
  checked against the base. (On the held-out stream bench, interims checked
  against the previous domain's interim were refused three times in three; and
  treating an interim as an adapted model made every re-confirmation of its own
  drift fall back from it, so no candidate was ever made.)
* An interim refused by its checks while its window still held inputs from before
  the drift is asked for once more when ``normalize_window`` inputs have arrived since
  the confirmation (`interim_refused`): a window straddling the change mixes two
  class distributions, which the burst check reads as classes arriving in runs. (On
  a stream of river's RandomRBF no file here names, a tenfold unit change cost the
  frozen model 55 points; its straddling interim was refused on temporal correlation
  0.29 and nothing served it for 2,000 events, while the interim made on 128 of its
  own inputs passes every check and serves 39 points over frozen.)
* If `driftwise.drift.label_shift` finds the drift is a new class prior alone, NORMALIZE
  serves the base with its probabilities corrected for that prior instead of the
  BatchNorm interim (which a skewed window would wreck), nothing is retrained
  while it serves, and the prior is re-estimated every ``normalize_window``
  inputs (`note_label_shift`).
* A drift confirmed on the predicted class prior alone (`driftwise.drift.prior_drift`: a weak model's embeddings
  barely move under a new prior) is answered by a label-shift correction or by nothing: NORMALIZE is asked
  again every ``normalize_window`` inputs until one serves, and no candidate is self-trained on its class mix.
  The prior it moved to is kept until the drift ends (`drift_prior`), for the source checks.
* While a drift stays confirmed and the base's weights serve (an interim, a label-shift
  correction, or the base waiting for its candidate), every ``normalize_window``
  inputs the loop asks whether the stream is back at the source (`Action.CHECK_SOURCE`,
  `driftwise.drift.normalize.back_to_source`): a confirmed drift is latched, so nothing else would
  notice, and an interim would serve the source's return. If it is, the drift is over
  (`source_returned`).
* If the served model's confidence has collapsed when an adaptation starts
  (`confidence_collapse`), labels are asked for at once, and the candidate is
  still made: a promotion withdraws the request. Labels that then arrive are
  learnt from by the next adaptation before any rejection asks for more (on the
  concept bench, waiting for the refusal asked 977-1256 events after the shift).
* While self-training's request for labels stands, every re-confirmation is taken for
  the drift that asked, except when the source checks find the latest inputs plainly
  differ from that drift's (`drift_left`, MMD permutation test on the base's
  embeddings): the stream has moved on, the request goes and the new drift adapts.
  (In a 30-minute soak through sixteen shifts, one request stopped every adaptation
  for 27 minutes: re-confirmed every hundred events or so, it never saw the 1,000
  calm ones that clear it.)
* A promoted candidate is refined once (`Action.REFINE`) as soon as ``refine_after``
  inputs of its domain have been seen since the drift was confirmed, with no new
  drift: the base model is adapted again on all of them (the first window and what
  came since; see `driftwise.drift.policy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

import numpy as np
import torch

from driftwise.drift.buffer import PseudoLabelBuffer, RecentWindow
from driftwise.drift.embedding_drift import reference_confidence, reference_statistics
from driftwise.drift.guardrails import correlation_check, first_occurrences
from driftwise.drift.loop_config import MIN_WINDOW, LoopConfig
from driftwise.drift.monitor import PRIOR, DriftMonitor
from driftwise.drift.policy import AdaptationPolicy
from driftwise.models.classifier import Classifier

if TYPE_CHECKING:
    from driftwise.drift.label_shift import LabelShift

SOURCE_CHECKS_WHILE_ADAPTED = 2
"""Source checks in a row that must say "the source again" before an adapted model makes way for the base."""
LABEL_SHIFT_SOURCE_CHECK = 32
"""Inputs between source checks while a label-shift correction serves (else ``normalize_window``): the check
then asks first whether the class prior came back, which costs an EM on the latest inputs, and a correction
served on into the source costs more per event than an interim (Agrawal, 90% of one class: 1.3 points of the
clean phase after it, with a check every 128)."""
ALARM_SECOND_LOOK = 32
"""Inputs after an `Action.CHECK_ALARM` that found the candidate's domain still there before it is asked once more;
only the second such answer calls the alarm false. The candidate serves meanwhile, as it would after a false alarm,
so a false alarm loses nothing by it; a change the first look missed is caught 32 inputs later, not after the
monitor, started afresh, has confirmed it again (on the held-out images, seed 0, the haze candidate's alarm 17
events into pixelate was kept, p = 0.393, and it and the base served 250 events before the next interim). Replayed
on the fallbacks of fourteen runs from before the check (`bench/results/alarm-check/second-look-fallbacks.txt`): of
57 changes the first look missed 5, both looks 1; of 15 false alarms the first look kept 12, both 11. On 43 alarms of
fifteen runs of the twelfth session (`second-look.txt`): the 4 changes the first look missed were all seen by the
second, and the 3 false alarms it kept were kept by both."""
MIN_REFERENCE_EVENTS = 256  # distinct held-out inputs needed to take a reference from them alone
MIN_ORDER_EVENTS = 128  # served predictions needed before their order is judged (an i.i.d. 128 scores 0 +- 0.09)


class Action(str, Enum):
    """What `DriftLoop.decide` asks the caller to do."""

    NONE = "none"
    NORMALIZE = "normalize"
    """Serve the base's weights with BatchNorm re-estimated on `DriftLoop.normalize_inputs` (if its cheap
    checks pass) until a candidate is promoted; then call `DriftLoop.serve_interim`, not `serve`."""
    CHECK_SOURCE = "check_source"
    """Ask whether the latest inputs (`normalize_inputs`) look like the source again, in the base's embeddings,
    then call `record_source_check` (which, if they do, ends the drift: if it returns True, serve the base)."""
    CHECK_DOMAIN = "check_domain"
    """While an interim serves: ask whether the latest inputs plainly differ from those it was made on (if so,
    `domain_moved` and a new interim), then call `record_domain_check`."""
    ADAPT = "adapt"
    REFINE = "refine"
    """Adapt the base model again, on all of the domain's inputs kept (``LoopConfig.refine_after``); the
    candidate replaces the promoted model if it passes the guardrails against it."""
    CHECK_ALARM = "check_alarm"
    """A new drift was confirmed while an adapted model serves: ask whether the latest inputs plainly differ from
    those it was adapted on, then call `record_alarm_check` (if they do, `FALL_BACK` follows; if not, the alarm
    was false and it serves on)."""
    FALL_BACK = "fall_back"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class AdaptationInputs:
    """What one adaptation is made from, taken when the loop said `Action.ADAPT`."""

    window_x: np.ndarray
    """The recent inputs since drift was confirmed (BatchNorm statistics, self-labelling, guardrails)."""
    train_x: np.ndarray
    train_y: np.ndarray
    holdout_x: np.ndarray
    """Pseudo-labels not trained on: the agreement guardrail's evidence."""
    holdout_y: np.ndarray
    taken_at: int
    """Events observed when the inputs were taken; later ones were never trained on."""


@torch.inference_mode()
def model_reference(model: Classifier, x: np.ndarray, *, batch_size: int = 512,
                    **statistics: Any) -> dict[str, np.ndarray]:
    """Reference statistics of ``model`` on inputs ``x`` (what its monitor will compare live traffic to).

    ``statistics`` go to `driftwise.drift.embedding_drift.reference_statistics` (e.g. ``false_alarm_rate``).
    """
    device = next(model.parameters()).device
    model.eval()
    embeddings, probabilities = [], []
    for start in range(0, len(x), batch_size):
        logits, z = model.forward_with_embedding(torch.as_tensor(x[start:start + batch_size], device=device))
        probabilities.append(torch.softmax(logits, dim=1).cpu().numpy())
        embeddings.append(z.cpu().numpy())
    return reference_statistics(np.concatenate(embeddings), np.concatenate(probabilities), **statistics)


def distinct_rows(x: np.ndarray) -> np.ndarray:
    """Rows without exact repeats, in their order (a replayed stream repeats inputs; repeats break MMD calibration)."""
    return x[first_occurrences(x)] if len(x) else x


class DriftLoop:
    """Monitor, buffer, window and policy, and the order in which they decide.

    Parameters
    ----------
    reference
        The served model's reference statistics (``None``: scalar detectors only).
    num_classes
        Classes the model predicts.
    config
        `LoopConfig`; its defaults when ``None``.
    adapt
        ``False`` is monitor-only: `decide` always answers `Action.NONE`.
    serving_base
        Whether the served model is the labeled original (fall back only from an adapted one).
    clock
        Seconds, monotone, for the policy's cooldown and waits.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def batch(n, drifted):
    ...     logits = rng.normal(size=(n, 3))
    ...     logits[:, 0] += 1.0 if drifted else 6.0
    ...     return rng.normal(size=(n, 4)).astype(np.float32), np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    >>> loop = DriftLoop(None, 3, LoopConfig(window=100, window_capacity=200, max_wait_seconds=0.0))
    >>> for start in range(0, 2000, 20):
    ...     loop.update(*batch(20, drifted=start >= 1000))
    ...     action = loop.decide()
    ...     if action is Action.NORMALIZE:  # the interim: the latest inputs' BatchNorm statistics, served at once
    ...         print(start, action.value, loop.normalize_inputs().shape)
    ...         loop.serve_interim()
    ...     elif action is Action.CHECK_DOMAIN:  # has the stream left the interim's domain? (here: no)
    ...         loop.record_domain_check()
    ...     elif action is Action.CHECK_SOURCE:  # are the latest inputs the source's again? (here: no)
    ...         _ = loop.record_source_check(False)
    ...     elif action is not Action.NONE:
    ...         print(start, action.value, loop.monitor.last_confirmation_index)
    ...         break
    1060 normalize (128, 4)
    1180 adapt 1023
    >>> inputs = loop.adaptation_inputs()  # the 100 inputs since confirmation; every pseudo-label held out
    >>> inputs.window_x.shape, len(inputs.train_y), len(inputs.holdout_y)
    ((100, 4), 0, 5)
    """

    def __init__(self, reference: Mapping[str, np.ndarray] | None, num_classes: int,
                 config: LoopConfig | None = None, *, adapt: bool = True, serving_base: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or LoopConfig()
        self.num_classes = num_classes
        self.adapt = adapt
        self.clock = clock
        c = self.config
        self.monitor = DriftMonitor(reference, seed=c.seed)
        self.false_alarms = 0
        """Drifts confirmed against an adapted model whose inputs had not left its domain (`record_alarm_check`)."""
        self.returns_to_source = 0
        """How many drifts ended with the stream back at the source (`source_returned`): an interim asked for before
        the latest return was asked for a drift that is over."""
        self.buffer = PseudoLabelBuffer(num_classes, capacity_per_class=c.capacity_per_class, threshold=c.threshold)
        self.window = RecentWindow(c.window_capacity)
        self.policy = AdaptationPolicy(
            cooldown_seconds=c.cooldown_seconds, min_pseudo_labels=c.min_pseudo_labels,
            rollback_window=c.rollback_window, rollback_tolerance=c.rollback_tolerance,
            max_wait_seconds=c.max_wait_seconds, min_fresh_events=c.window, feedback_window=c.feedback_window,
            min_feedback=c.min_feedback, refine_after_events=c.refine_after, clock=clock)
        self._reset(serving_base)

    def _reset(self, serving_base: bool) -> None:
        self.serving_base = serving_base
        self.events = 0
        self.normalize_pending = False
        """A drift was confirmed and no interim normalised model has been made for it yet."""
        self._normalize_at = self.config.normalize_after
        """``_since_confirmation`` from which the pending interim is asked for (see `interim_refused`)."""
        self._normalized_at = 0  # ``_since_confirmation`` at the latest `Action.NORMALIZE` asked for
        self._since_confirmation = 0
        self.drift_prior: np.ndarray | None = None
        """The class prior a drift confirmed on the predicted prior alone moved to (`driftwise.drift.prior_drift`):
        kept until the drift ends or another is confirmed, though the monitor starts afresh after a refused
        candidate, since the source checks must see the prior back too (`DriftLoop.source_returned`)."""
        self._furthest_shift: LabelShift | None = None  # see `shifted_prior`
        self.label_shift_since: int | None = None
        """``_since_confirmation`` when a label-shift correction was last served (None: none serves): the drift is
        a new class prior, answered by Bayes' rule, so nothing is retrained; it is re-estimated every
        ``normalize_window`` inputs while the drift lasts."""
        self._served_confidence = [0.0, 0]  # sum and count of confidences since the drift or the latest swap
        self._source_checked_at = 0  # ``_since_confirmation`` at the last `Action.CHECK_SOURCE`
        self.interim_serving = False
        """An interim (`Action.NORMALIZE`) serves: the stream leaving its domain is checked for (`Action.CHECK_DOMAIN`)."""
        self._domain_checked_at = 0  # ``_since_confirmation`` at the last `Action.CHECK_DOMAIN`
        self._moved_at: int | None = None
        """``events`` when the drift last moved on to another domain (`domain_moved`), if it ever did."""
        self.domain_check_pending = False
        self._interim_asked = False
        """An interim was asked for since the last model swap (after a fallback, before the drift is confirmed
        against the base again): it may be serving the source's return, so the source is checked for too."""
        self.source_check_pending = False
        self._source_backs = 0  # source checks in a row that said "the source again" while an adapted model served
        self._reconfirming = False
        """The monitor was reset to see whether the drift that asked for labels goes on (see `decide`)."""
        self._source_first = False
        """A fallback's drift may be the source coming back (the adapted model's reference is not the source's):
        before its interim is made, `Action.CHECK_SOURCE` asks once; set until the answer, whose "not back"
        confirms the drift (`record_source_check`)."""
        self.alarm_check_pending = False
        """`Action.CHECK_ALARM` was asked and not yet answered: nothing else is decided meanwhile."""
        self._alarm_moved = False  # answered "moved": the fallback is decided next
        self._alarm_again_at: int | None = None  # `events` at which the alarm's second look is due (`ALARM_SECOND_LOOK`)
        self._alarm_looks = 0  # answers "not moved" to the pending alarm so far
        self.alarm_inputs: np.ndarray | None = None
        """The latest inputs when self-training asked for labels (`labels_needed_for_a_drift`): what that drift
        looked like, so that a different one is not taken for it (`drift_left`)."""
        self.accepted = 0  # pseudo-labels accepted from the last batch
        self.rejected = 0

    # -- observing --------------------------------------------------------------------------------
    def update(self, x: np.ndarray, probabilities: np.ndarray, embeddings: np.ndarray | None = None) -> None:
        """One predicted batch: inputs ``(n, ...)``, calibrated probabilities ``(n, k)``, embeddings ``(n, dim)``."""
        probabilities = np.asarray(probabilities)
        self.monitor.update(probabilities, embeddings)
        self.accepted, self.rejected = self.buffer.offer(x, probabilities)
        self.window.add(x, probabilities.argmax(axis=1))
        confidences = probabilities.max(axis=1)
        self.policy.observe(confidences)
        self._served_confidence[0] += float(confidences.sum())
        self._served_confidence[1] += len(confidences)
        self._since_confirmation += len(probabilities)
        self.events += len(probabilities)

    def record_feedback(self, predictions: Iterable[int], labels: Iterable[int],
                        confidences: Iterable[float] | None = None) -> None:
        """(served prediction, true label, its confidence) from the feedback topic: live accuracy, labels needed."""
        self.policy.record_feedback(predictions, labels, confidences)

    # -- deciding ---------------------------------------------------------------------------------
    def decide(self) -> Action:
        """What to do after the last `update`; the policy's bookkeeping for the action is done here.

        A newly confirmed drift clears the buffer, and while an adapted model serves
        means falling back to the base, once `Action.CHECK_ALARM` says the stream left that model's domain (a false
        alarm leaves it serving); the fallback's interim waits for one
        `Action.CHECK_SOURCE`, since leaving an adapted domain may be the source's
        return (on the demo's last clean phase, an interim served it). Roll back if the last promotion fell short of
        its promise. Both happen at once, cancelling a refinement in flight (check
        `candidate_wanted` before serving). Otherwise, unless an adaptation is
        running: adapt if the policy agrees, or refine the promoted model once enough
        of its domain has been seen. After `Action.ADAPT` or `Action.REFINE` call
        `record_result`; after a swap, `serve`. When nothing else is due and an interim serves, check
        every ``domain_check_every`` inputs that its domain is still the stream's (`Action.CHECK_DOMAIN`).
        """
        action = self._decide()
        if (action is Action.NONE and self.interim_serving and self.config.domain_check_every > 0
                and not self.domain_check_pending and not self.source_check_pending
                and self._since_confirmation - self._domain_checked_at >= self.config.domain_check_every):
            self._domain_checked_at, self.domain_check_pending = self._since_confirmation, True
            return Action.CHECK_DOMAIN  # only when nothing else is due: it must hold back nothing
        return action

    def _decide(self) -> Action:
        if not self.policy.labels_needed_for_a_drift:
            self.alarm_inputs = None  # the alarm ended (labels came, or the drift did)
        if self.alarm_check_pending:
            if self._alarm_again_at is not None and self.events >= self._alarm_again_at:
                self._alarm_again_at = None
                return Action.CHECK_ALARM  # the second look (`record_alarm_check`)
            return Action.NONE
        if self._alarm_moved:  # the adapted model's domain has gone: the drift is new
            self._alarm_moved = False
            if self._new_drift():
                return Action.FALL_BACK
        elif self.monitor.newly_confirmed and self._reconfirming and self.policy.labels_needed:
            # The drift that asked for labels, confirmed afresh: not a new drift, so the source checks' clock runs
            # on (restarting it at every re-confirmation, ~40 events apart, starved them: on digits the interim of
            # a shift it could not learn served the next shift and the clean phase after it, 2.7 and 0.8 points
            # under frozen, with the alarm raised to the end).
            self._reconfirming = False
        elif (self.monitor.newly_confirmed and not self.serving_base and self.policy.in_flight
              and not self.policy.refining):
            # A candidate was swapped in and its adaptation's result is not recorded yet (`record_result`): the
            # drift is confirmed afresh against it once it is, and checked as an alarm then. Taken for a new drift
            # of the base, it asked for an interim while the candidate served, and adapted the candidate itself:
            # on the held-out images (seed 1) the pixelate candidate, promoted as gamma began, served 900 events
            # of gamma 2.9 points under the frozen model.
            self.monitor.reset()
        elif self.monitor.newly_confirmed:
            self._reconfirming = False
            if self.adapt and self.policy.should_fall_back(drift_confirmed=True, serving_base=self.serving_base):
                self.alarm_check_pending = True
                return Action.CHECK_ALARM
            self._new_drift()
        if not self.adapt:
            return Action.NONE
        if self.policy.should_roll_back():
            self.policy.record_rollback()
            return Action.ROLLBACK
        if (self.normalize_pending and self._since_confirmation >= self._normalize_at
                and len(self.window) >= MIN_WINDOW and not self.policy.labels_needed and not self.source_check_pending):
            if self._source_first:  # the answer decides: the base again (`source_returned`), or the interim next
                self._source_checked_at, self.source_check_pending = self._since_confirmation, True
                return Action.CHECK_SOURCE
            if self.classes_in_runs():
                return Action.NONE  # still pending: asked for once the classes stop arriving in runs
            self.normalize_pending, self._interim_asked = False, True
            self._normalized_at = self._since_confirmation
            return Action.NORMALIZE
        every = self.config.normalize_window if self.label_shift_since is None else LABEL_SHIFT_SOURCE_CHECK
        if ((not self.serving_base or self.monitor.drift_confirmed or self._interim_asked)
                and not self.source_check_pending
                and self._since_confirmation - self._source_checked_at >= every):
            self._source_checked_at, self.source_check_pending = self._since_confirmation, True
            return Action.CHECK_SOURCE
        if self.policy.in_flight:
            return Action.NONE
        if self.label_shift_since is not None:
            if (self._since_confirmation - self.label_shift_since >= self.config.normalize_window
                    and not self.classes_in_runs()):
                self.label_shift_since = self._since_confirmation  # NORMALIZE says again what serves
                return Action.NORMALIZE
            return Action.NONE
        if self.drift_prior is not None:
            # A drift seen in the class prior alone, not yet called a label shift: the answer is a correction or
            # nothing, asked again every window. Self-training on a window of a new class mix is not one (Agrawal,
            # seed 0: two candidates refused, yield 0-2%, and each refusal restarted the monitor; the first 90%
            # phase was never corrected).
            if (self.monitor.drift_confirmed and not self.classes_in_runs()
                    and self._since_confirmation - self._normalized_at >= self.config.normalize_window):
                self._normalized_at = self._since_confirmation
                return Action.NORMALIZE
            return Action.NONE
        drift = self.monitor.drift_confirmed
        if (self.policy.should_adapt(drift_confirmed=drift, pseudo_count=len(self.buffer))
                and not self.classes_in_runs()):
            self.policy.adaptation_started()
            collapsed = self.confidence_collapse()
            if collapsed:  # a model that no longer knows what it sees may not teach itself: ask now, try anyway
                self.policy.ask_for_labels(f"self-training started though {collapsed}")
                self._note_alarm()
            return Action.ADAPT
        if self.policy.should_refine(drift_confirmed=drift) and not self.classes_in_runs():
            self.policy.adaptation_started(refinement=True)
            return Action.REFINE
        if drift and self.policy.labels_needed:
            # Noted, and nothing to do until labels arrive; re-confirming afresh shows whether the drift goes on,
            # so the alarm can clear when it ends (a latched confirmation would hold it forever).
            self.monitor.reset()
            self._reconfirming = True
        return Action.NONE

    def _new_drift(self) -> bool:
        """A newly confirmed drift's bookkeeping; True when the adapted model serving must make way for the base."""
        self.buffer.clear()  # what it holds predates the drift
        self.normalize_pending = self.adapt and self.config.normalize_after > 0
        self._normalize_at = self.config.normalize_after
        self._since_confirmation = self._source_checked_at = self._domain_checked_at = self._normalized_at = 0
        self._served_confidence = [0.0, 0]
        self.label_shift_since, self._furthest_shift = None, None
        self._source_first = False
        # (Read from the monitor only here: a refused candidate restarts it, and a source check asking the
        # embeddings alone then called the drift over inside Agrawal's 90% phase, seed 0: confirmed again 1,160
        # events after the first time, its first correction served 1,300 events after.)
        confirmed_prior = self.monitor.confirmed_prior if self.monitor.confirmed_by == PRIOR else None
        self.drift_prior = None if confirmed_prior is None else confirmed_prior.copy()
        if self.adapt and self.policy.should_fall_back(drift_confirmed=True, serving_base=self.serving_base):
            self.policy.record_fallback()
            self._source_first = True
            return True
        return False

    def record_alarm_check(self, moved: bool, reference: Mapping[str, np.ndarray] | None = None) -> None:
        """The answer to `Action.CHECK_ALARM` (ignored if another model was served meanwhile).

        ``moved``: the stream left the adapted model's domain; the drift is new and `Action.FALL_BACK` is
        decided next, as without the check. If not, the first time `Action.CHECK_ALARM` is asked again
        `ALARM_SECOND_LOOK` inputs later, the adapted model serving meanwhile; the second time the alarm was false:
        the adapted model serves on and its monitor starts afresh, on ``reference`` when given (its statistics on
        more of its own domain; see `alarm_final_look`).

        A change both looks miss leaves the candidate serving until its monitor, started afresh,
        confirms again (see `driftwise.service.adaptation.AdaptationController._check_alarm` for the test).
        """
        if not self.alarm_check_pending:
            return
        if not moved and not self.alarm_final_look:
            self._alarm_looks, self._alarm_again_at = 1, self.events + ALARM_SECOND_LOOK
            return
        self.alarm_check_pending, self._alarm_again_at, self._alarm_looks = False, None, 0
        if moved:
            self._alarm_moved = True
        else:
            self.monitor.reset(reference)
            self.false_alarms += 1

    def adapted_domain_gone(self) -> None:
        """The adapted model serving has lost its domain, as seen outside its monitor (its refinement's guardrails:
        the inputs since its window, or the latest, differ from it): decided as an alarm that said "moved", so
        `Action.FALL_BACK` comes next, then the source check and the interim of the new domain.

        Served the base directly instead, the base's monitor, started afresh, had to confirm the drift again: on the
        held-out images (seed 2, 312545e) it did so 270 events into stripes, on the predicted prior alone, and the
        base served the rest of the phase (+1.4 points against +5.1 on d10268c).
        """
        if self.serving_base:
            return
        self.alarm_check_pending, self._alarm_again_at, self._alarm_looks = False, None, 0
        self._alarm_moved = True

    @property
    def alarm_final_look(self) -> bool:
        """Whether the `Action.CHECK_ALARM` being answered is the alarm's second look, whose "not moved" calls the
        alarm false (the caller then takes the model's new ``reference``)."""
        return self._alarm_looks >= 1

    def classes_in_runs(self) -> bool:
        """Whether the latest ``order_events`` served predictions come in runs of one class (their temporal
        correlation over distinct inputs above ``max_stream_correlation``; `MIN_ORDER_EVENTS` at least).

        The interim's and the candidate's own checks judge their window of 128-256 inputs, where three or four
        runs of 50 can score under 0.2 by chance; asked again at every re-confirmation, some passed (on the
        held-out stream in class runs of 50: three interims and a label-shift correction, worst window -7.6).
        Five hundred predictions do not leave it to chance, so nothing is asked for while this holds.

        Too few to judge counts as runs: nothing is asked for until enough has come (a service that confirms a
        drift within its first `MIN_ORDER_EVENTS` predictions waits until as many have come since).
        """
        classes, inputs = self.window.classes(), self.window.array()
        n, since = len(classes), min(self._since_confirmation, len(classes))
        # Since the drift was confirmed once that is enough: a span across the change mixes two class distributions,
        # which reads as runs (a 50/50 prior turned 90/10 scores 0.19 half and half). Before that, the span up to it.
        if since >= MIN_ORDER_EVENTS:
            start, end = n - min(since, self.config.order_events), n
        else:
            start, end = max(0, n - since - self.config.order_events), n - since
        if end - start < MIN_ORDER_EVENTS:
            # Judged on nothing, a burst passed: on the held-out stream bench in class runs of 50 (seed 0) the
            # drift was confirmed 61 events in, and an interim made on them by event 122 passed its own
            # correlation check by chance and served the first clean phase 3.8 points under the frozen model.
            return True
        return not correlation_check(classes[start:end], self.config.max_stream_correlation,
                                     inputs[start:end]).passed

    def record_source_check(self, back: bool) -> bool:
        """The answer to `Action.CHECK_SOURCE`: with ``back``, the drift is over (`source_returned`); True when the
        caller must serve the base again.

        Without, after a fallback (the monitor started afresh on the base), the answer is the confirmation:
        the stream left the adapted domain for another one, not for the source. The base's monitor cannot
        give it once the fallback's interim serves, and that serves at once: the interim's outputs look
        like the source's to it (on the held-out stream bench, shear and stripes were served by interims
        for whole phases, 1,400-1,550 events, and no candidate was ever made for them).

        While an adapted model serves, `SOURCE_CHECKS_WHILE_ADAPTED` answers in a row must say ``back``:
        its own monitor, on its own reference, need not see a return from a shift it barely confirmed (on the
        fourth fresh-data trial a candidate for such a shift served the clean phase after it 2.7 points under
        the frozen model), and a subtle shift may look like the source in one window of 128.
        """
        self.source_check_pending = False
        fallback_check, self._source_first = self._source_first, False
        if not self.serving_base:
            self._source_backs = self._source_backs + 1 if back else 0
            if self._source_backs < SOURCE_CHECKS_WHILE_ADAPTED:
                return False
            self.policy.record_fallback()  # its watch and any refinement of it end: its domain has gone
            self.source_returned()
            return True
        if back:
            self.source_returned()
            return True
        if fallback_check and not self.monitor.drift_confirmed and not self.policy.labels_needed:
            self.monitor.hold_confirmed("the stream left the adapted domain, not for the source")
        return False

    def record_domain_check(self) -> None:
        """`Action.CHECK_DOMAIN` was answered (a move is told by `domain_moved`): the next one may be asked."""
        self.domain_check_pending = False

    def source_returned(self) -> None:
        """The stream is back at the source while the base's weights served: the base serves, the drift is over.

        The monitor starts afresh on the base's reference, the drift's pseudo-labels go, and no interim is due.
        An adaptation in flight is not cancelled: its guardrails find it stale (``same_domain``).
        """
        self.serve(None, base=True)
        self.normalize_pending = False
        self._interim_asked = False
        self.drift_prior = None
        self.returns_to_source += 1
        self.policy.drift_left()  # a drift that asked for labels is over too
        self.alarm_inputs = None

    def interim_refused(self) -> None:
        """`Action.NORMALIZE`'s interim failed its checks: if its window began before the drift (or before the
        drift's latest move to another domain, `domain_moved`), ask once more when the latest ``normalize_window``
        inputs all came since.

        A burst is refused again then (its pure window is still a burst); a window that straddled the change
        is not held against the drift. Nor against its move: a refused replacement leaves the base serving the
        drift, with no interim asked for again until a candidate serves or the drift is confirmed afresh (on the
        fifth fresh-data trial's RLC table, the base served 1,276 events of a phase that BatchNorm re-estimation
        lifts by 10 points, after one replacement was refused by the burst check).
        """
        since = self._since_confirmation  # inputs since the drift was confirmed, or since its latest move
        if self._moved_at is not None:
            since = min(since, self.events - self._moved_at)
        if self.monitor.drift_confirmed and since < self.config.normalize_window:
            self.normalize_pending = True
            self._normalize_at = self._since_confirmation - since + self.config.normalize_window

    def domain_moved(self) -> None:
        """The interim serving the drift was made for inputs the latest plainly differ from (the caller compared
        them): the stream moved on to a third domain. The next candidate adapts on that one alone: the count of
        fresh inputs starts again and the old domain's pseudo-labels go.

        On the held-out stream bench a candidate started 160 events into motion blur adapted on a window
        whose first 95 inputs were speckle noise, two interims after the domain check had seen the change; it
        was refused as stale 380 events later, a third of its phase gone.
        """
        self.buffer.clear()
        self.policy.domain_moved()
        self._moved_at = self.events

    def features_moved(self) -> None:
        """A BatchNorm interim was served for the drift: its checks found the features moved, and no new class prior
        explained them. A drift first seen in the class prior (`drift_prior`) is a covariate one after all, adapted
        to as any other (a candidate comes next); kept, the loop would ask only for corrections, every window."""
        self.drift_prior = None

    def note_label_shift(self, corrected: bool, shift: LabelShift | None = None) -> None:
        """`Action.NORMALIZE` served a label-shift correction (``corrected``) for ``shift``, or the usual interim
        (not)."""
        self.label_shift_since = self._since_confirmation if corrected else None
        if not corrected:
            self._furthest_shift = None
        elif shift is not None and (self._furthest_shift is None or shift.shift > self._furthest_shift.shift):
            self._furthest_shift = shift

    @property
    def shifted_prior(self) -> np.ndarray | None:
        """The prior furthest from the source's of the label-shift corrections served for this drift: the source
        checks ask whether the prior came back from it (`driftwise.drift.label_shift.prior_returned`), not from the
        latest correction's. Re-estimated as the prior went back, corrections follow it part of the way, and the
        evidence of a return from them never grew enough (Agrawal, seed 2: corrections served a clean phase 10.4
        points under the frozen model)."""
        return None if self._furthest_shift is None else self._furthest_shift.prior

    def candidate_wanted(self) -> bool:
        """Whether a candidate that passed its guardrails may be served (not a refinement cancelled by a fallback
        or a rollback)."""
        return not self.policy.refinement_cancelled

    def moved_since(self, event: int) -> bool:
        """Whether the drift moved on to another domain (`domain_moved`) after the loop's event ``event``: a
        candidate whose window was taken then (`AdaptationInputs.taken_at`) was made for a domain that has gone.

        Its ``same_domain`` guardrail cannot always tell: promoted 28 events into the next phase, when the inputs
        since its window were still mostly its own domain, a candidate for a wandering leak served a totalizer's
        sawtooth for 1,438 events, 15 points under the frozen model (sixth fresh-data trial, heat exchanger),
        though the domain check had already replaced the interim for the new domain.
        """
        return self._moved_at is not None and self._moved_at > event

    def force_adaptation(self) -> None:
        """An operator's override: adapt now, whatever the monitor says (the guardrails still apply)."""
        if self.policy.in_flight:
            raise RuntimeError("an adaptation is already running")
        if len(self.window) < MIN_WINDOW:
            raise ValueError(f"not enough recent traffic to adapt on (need {MIN_WINDOW} inputs)")
        self.policy.adaptation_started()

    def normalize_inputs(self, n: int | None = None) -> np.ndarray:
        """The latest ``n`` inputs (default ``normalize_window``, at most ``normalize_window_max``): the interim's
        BatchNorm statistics (`Action.NORMALIZE`)."""
        n = self.config.normalize_window if n is None else min(n, self._largest_interim)
        recent = self.window.array()
        return recent[max(0, len(recent) - n):]

    def interim_growth(self, made_on: int, taken_at: int) -> int | None:
        """The inputs to make the serving interim again on, when its domain has grown: it was made on ``made_on``
        inputs when `events` was ``taken_at``, and they and all since are of its domain (the caller has checked).
        None until they are twice as many, or ``normalize_window_max`` (see `LoopConfig.normalize_window_max`).

        >>> loop = DriftLoop(None, 3, LoopConfig())
        >>> loop.events = 1000
        >>> loop.interim_growth(128, 900), loop.interim_growth(128, 872), loop.interim_growth(300, 700)
        (None, 256, 512)
        >>> loop.interim_growth(512, 0) is None
        True
        """
        largest = self._largest_interim
        domain = min(made_on + max(0, self.events - taken_at), largest)
        return domain if domain > made_on and domain >= min(2 * made_on, largest) else None

    @property
    def _largest_interim(self) -> int:
        return min(self.config.normalize_window_max, self.config.window_capacity)

    def adaptation_inputs(self) -> AdaptationInputs:
        """The latest ``window`` inputs since drift was confirmed (for a refinement, all the domain's inputs kept;
        on a manual trigger with no drift all recent inputs, at least `MIN_WINDOW`) and the buffer split into training
        and held-out pseudo-labels.

        Why at most ``window``: an adaptation starts once ``window`` inputs have arrived *and* the cooldown since
        the last one is over. When a drift is confirmed sooner (the monitor's short window), the cooldown set by
        the refinement the drift cancelled is what holds the candidate back, and it then adapted on every input
        since: 460 on the held-out stream bench instead of 260-300, 17-18 s of training instead of 13-14, so
        each candidate arrived about 200 events later. The refinement adapts on all of the domain anyway."""
        if self.policy.refining:
            fresh = self.policy.domain_events
        elif self.policy.fresh_events:  # the latest `window`: how long the cooldown held it back must not slow it
            fresh = min(self.policy.fresh_events, self.config.window)
        else:  # an operator's trigger with no drift confirmed
            fresh = len(self.window)
        fresh = min(max(fresh, MIN_WINDOW), len(self.window))
        window_x = self.window.array()[len(self.window) - fresh:]
        px, py = self.buffer.samples()
        order = np.random.default_rng(self.events).permutation(len(py))
        n_hold = int(round(len(py) * self.config.holdout_fraction))
        hold, train = order[:n_hold], order[n_hold:]
        return AdaptationInputs(window_x, px[train], py[train], px[hold], py[hold], self.events)

    # -- being told what happened -----------------------------------------------------------------
    def record_result(self, outcome: Literal["promoted", "rejected", "failed"],
                      expected_confidence: float | None = None, *, window_unfit: bool = False) -> None:
        """How the adaptation ended; ``expected_confidence`` (the candidate's on the window) starts the watch.

        A rejection resets the monitor so the drift must be confirmed afresh before the next try; if the
        served model's confidence had collapsed (`confidence_collapse`), labels are needed at once. A candidate refused
        for its window (`GuardrailReport.window_unfit`: the stream moved on while it was made, or the window was a
        burst of classes) is not held against the drift.
        """
        collapsed = None
        if outcome == "rejected":
            collapsed = None if window_unfit else self.confidence_collapse()
            self.monitor.reset()
        self.policy.record_outcome(outcome, expected_confidence=expected_confidence, confidence_collapsed=collapsed,
                                   window_unfit=window_unfit)
        self._note_alarm()

    def _note_alarm(self) -> None:
        """Keep what the drift looked like when self-training asked for labels (until the alarm ends)."""
        if not self.policy.labels_needed_for_a_drift:
            self.alarm_inputs = None
        elif self.alarm_inputs is None and len(self.window):
            self.alarm_inputs = self.normalize_inputs().copy()

    def drift_left(self) -> None:
        """The stream has moved on from the drift that asked for labels to another one (the caller compared
        `alarm_inputs` with the latest): its alarm goes, and the next confirmation is a new drift, with an
        interim and a candidate of its own.

        Every re-confirmation while labels are needed is otherwise taken for the same drift, and the alarm
        clears only after ``clear_after_calm_events`` with none: on a stream that moves from one shift to the
        next, one drift self-training could not learn stopped every later adaptation (the soak: 27 minutes).
        """
        if self.classes_in_runs():
            return  # each run of one class looks like a domain of its own: not evidence the drift ended
        self.policy.drift_left()
        self.alarm_inputs = None
        self._reconfirming = False
        self.monitor.reset()

    def confidence_collapse(self) -> str | None:
        """Why the served model's confidence counts as collapsed, or None: its mean is under ``collapse_confidence``
        times its reference mean (a drift it cannot teach itself).

        The mean is over the predictions since the drift was confirmed or the latest model began to serve (the
        interim's, as `driftwise.bench.collapse_confidence` measured it), once there are `MIN_WINDOW`; before that, over
        the monitor's rolling window (which, as an adaptation starts, is still half the source's).
        """
        total, count = self._served_confidence
        mean = total / count if count >= MIN_WINDOW else self.monitor.signal_means["confidence"]
        expected = reference_confidence(self.monitor.reference)
        if mean is None or expected is None or self.config.collapse_confidence <= 0:
            return None
        if mean >= self.config.collapse_confidence * expected:
            return None
        return f"mean confidence collapsed to {mean:.2f} (reference {expected:.2f})"

    def serve(self, reference: Mapping[str, np.ndarray] | None, *, base: bool) -> None:
        """Another model serves now: watch it against its own reference (``None`` keeps the current one).

        The buffer's pseudo-labels came from the old model, so they go; the window is inputs, so it stays.
        """
        self.monitor.reset(reference)
        self.buffer.clear()
        self._served_confidence = [0.0, 0]
        self._interim_asked = False
        self.alarm_check_pending = self._alarm_moved = False  # an alarm against the model served before is moot
        self._alarm_again_at, self._alarm_looks = None, 0
        self._source_checked_at, self._source_backs = self._since_confirmation, 0  # checked on its inputs only
        self.serving_base = base
        self.interim_serving = False
        self.label_shift_since, self._furthest_shift = None, None
        if not base and not self._source_first:  # a candidate for the drift serves: no interim any more
            self.normalize_pending = False
        # (After a fallback is decided, a candidate finishing meanwhile may still be served before it: it is stale,
        # the fallback follows, and the new drift's interim must still come. On the held-out images, seed 1, a
        # refinement served 9 events after a new drift took the pending interim with it: the base served gamma's
        # last 1,300 events, +0.4 points over frozen where the run before, with an interim, gained +7.3.)

    def serve_interim(self) -> None:
        """The interim normalised model serves (`Action.NORMALIZE`): nothing is reset.

        The drift stays confirmed (the candidate is still to be made), the monitor keeps
        the base's reference, and the buffer keeps its pseudo-labels. It counts as the
        base (its weights are the base's): a new drift asks for a new interim, made from
        the base and checked against the base, not a fallback.
        """
        self.serving_base = True
        self._served_confidence = [0.0, 0]  # its confidence, not the base's, says whether it collapsed
        self.interim_serving, self._domain_checked_at = True, self._since_confirmation

    def interim_withdrawn(self) -> None:
        """The base's own statistics serve the drift again (its interim was made for a domain that has gone, and
        the new one's was refused): nothing resets, and no domain check is asked while no interim serves."""
        self.serving_base = True
        self._served_confidence = [0.0, 0]
        self.interim_serving = False

    def inputs_since(self, since_event: int) -> np.ndarray:
        """The recent inputs that arrived after event ``since_event`` (at most the window's capacity)."""
        recent = self.window.array()
        return recent[len(recent) - min(len(recent), self.events - since_event):]

    def reference_inputs(self, since_event: int) -> np.ndarray:
        """Distinct recent inputs that arrived after ``since_event`` (not trained on), or the whole window's."""
        held_out = self.held_out_inputs(since_event)
        return distinct_rows(self.window.array()) if held_out is None else held_out

    def held_out_inputs(self, since_event: int, skip_latest: int = 0) -> np.ndarray | None:
        """The distinct inputs that arrived after ``since_event``, less the latest ``skip_latest``, if there are
        `MIN_REFERENCE_EVENTS` of them."""
        recent = self.window.array()
        since = recent[len(recent) - min(len(recent), self.events - since_event):]
        held_out = distinct_rows(since[:max(0, len(since) - skip_latest)])
        return held_out if len(held_out) >= MIN_REFERENCE_EVENTS else None

    def candidate_reference(self, candidate: Classifier, since_event: int) -> dict[str, np.ndarray]:
        """The reference a promoted ``candidate`` is served with (see `reference_inputs`)."""
        return model_reference(candidate, self.reference_inputs(since_event),
                               false_alarm_rate=self.config.reference_false_alarm_rate)
