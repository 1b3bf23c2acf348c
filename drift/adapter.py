"""Turn a confirmed covariate drift into a candidate model, without labels.

The recipe, in the order it runs (each step a named function below):

1. `recalibrate_batchnorm` on the drifted window: re-estimate every BatchNorm's
   running statistics on the new inputs. Free, label-free, and on its own it
   recovers much of what blur, contrast or noise cost (AdaBN, Li et al. 2016).
2. `self_label`: the BN-adapted model labels the window; confident labels join the
   buffer's pseudo-labels (confident under the *serving* model) and any feedback labels.
3. `finetune` briefly on those labels, each class sampled in its share of the class
   prior the model was trained under (class-balanced when that is uniform, see
   `prior_weights`), mixed in every step with **replay of the labeled anchor set**
   saved with the model, sampled the same way (naive training on
   confident samples alone skews classes and forgets). BatchNorm uses each batch's
   own statistics with running statistics frozen, and the anchors go through in
   their own batch, so the clean anchors and the drifted inputs are each normalised
   in their own domain. Labeled images are seen through random 1-pixel shifts,
   half of them also slightly rotated.
   Optionally an entropy term on the window (Tent).
4. Steps 2-3 repeat for ``rounds``, each round re-labelling with the latest
   candidate but fine-tuning from the BN-adapted model (so errors do not compound),
   as long as the time budget holds a whole round.
5. The candidate's weights are the average of the fine-tuned ones and the
   BN-adapted start's (``finetuned_weight``; weight-space ensembling, WiSE-FT,
   Wortsman et al. 2022), with BatchNorm re-estimated on the window for them.
   Self-training is confident and sometimes wrong: on the development shifts the
   fine-tuned model alone fell up to 2.9 points under the BN-adapted one on tabular
   windows (7.7 in a first look), and the halfway average did better on average
   and in the worst window, on digits and tabular alike (`finetuned_weight`). Not with feedback labels: they
   are the truth, and a label-changing drift needs the new labelling whole (the
   halfway average of a model trained on permuted labels kept 4% of them).

The temperature is kept from the current model (or, with ``refit_temperature``,
re-fitted on the anchors in their own domain). Everything is cheap: a few seconds
for an 8x8 CNN on one CPU thread. `driftwise.drift.worker` runs it in a separate process, so
serving never waits on it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from driftwise.models.calibration import fit_temperature
from driftwise.models.classifier import Classifier
from driftwise.models.train import recalibrate_batchnorm

ProgressFn = Callable[[str, int, int], None]
ROUND_MARGIN = 1.2
"""A later round starts if this many times the last round's time still fits the budget: on the stream bench's
shared cores consecutive rounds differed by up to 15%, and one started with 0.3 s to spare ran 6.4 s into the
deadline, to be discarded."""
TRAINABLE = ("all", "norm_head", "head")


@dataclass(frozen=True)
class AdaptConfig:
    """How a candidate is made; every field is validated at once.

    The defaults are the recipe chosen on the validation split (all parameters,
    shifted and rotated views, self-labelling at 0.9; three rounds there, one now: see ``rounds``), measured by
    ``python -m driftwise.bench.recipes`` (bench/results/recipes.md: 256-event windows, 3 per
    corruption, scored on 2,000 other events, each variant against its own oracle).
    Mean gap closed over digits-C, all events / held-out images, and held-out
    accuracy gain: this recipe 0.60 / 0.65, +14.5 points; shifts only 0.56 / 0.69,
    +13.3 (rotated digits 0.25 held out against 0.67); 200 steps 0.58 / 0.60, +14.6
    at twice the time; one round 0.54 / 0.69, +14.2; threshold 0.8 0.52 / 0.55;
    Tent entropy 0.5 0.50 / 0.53. The held-out leads of "shifts only" and "one
    round" rest on blur, where the oracle gains only 1-2 points. Tried once outside
    the benchmark: photometric views 0.52-0.58; self-labels per class 0.57, or
    averaged over 8 augmented views 0.51; on-the-fly pseudo-labelling during
    fine-tuning (FixMatch-style, eval-mode teacher) collapsed.
    """

    steps: int = 100
    """Fine-tuning steps per round."""
    rounds: int = 1
    """Self-labelling rounds (1 = label once with the BN-adapted model). One, not the three the recipe bench
    chose on a simulated clock, because in real time a candidate's lateness costs more than a round adds: under
    the stream bench's load each round took 3-6 s, and the candidates of the development streams came 1,150-1,470
    events into their 1,500-event phases with three rounds and 680-980 with one (digits +6.3 -> +6.7 points,
    ImageSegments +3.2 -> +4.1, one run each, bench/results/candidate-rounds). Offline (recipes.md) one round
    closes 0.69 of the held-out gap against 0.65, 0.54 of all events' against 0.60."""
    batch_size: int = 64
    """Pseudo-labelled inputs per step."""
    anchor_batch_size: int = 32
    """Anchor inputs replayed per step."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = True
    """Train on random views of each labeled image (images only): 1-pixel shifts, and rotations (below)."""
    rotate_degrees: float = 12.0
    """Half of the views are also rotated by up to this many degrees (0 turns rotations off)."""
    trainable: str = "all"
    """Parameters fine-tuned: "all", "norm_head" (BatchNorm affine + head, as in Tent) or "head"."""
    anchor_weight: float = 1.0
    """Weight of the anchor replay loss against the pseudo-label loss."""
    entropy_weight: float = 0.0
    """Weight of the mean prediction entropy on window inputs (0 turns it off)."""
    self_label_threshold: float | None = 0.9
    """Confidence at which the BN-adapted candidate labels window inputs itself; None: buffer labels only."""
    min_train_labels: int = 10
    """Below this many labels, fine-tuning is skipped and the candidate is BN-adapted only."""
    bn_batch_size: int = 256
    refit_temperature: bool = False
    finetuned_weight: float = 0.5
    """Share of the fine-tuned weights in the candidate; the rest is the BN-adapted start's (1.0: the fine-tuned
    model as it is). Chosen on the development shifts only (``python -m driftwise.bench.weight_averaging``,
    bench/results/weight-averaging.md: 256-event windows on the stream bench's own `driftwise pretrain` models).
    Digits, 42 windows: mean gain over the frozen model +8.1 points at 0.5 against +7.5 at 1.0 (+8.0 at 0.75),
    worst window +0.5 against -0.5. Tabular (ImageSegments, Waveform 80/15/5, Agrawal), 12 windows: +5.0 against
    +4.3 (+4.7), and against the BN-adapted model alone, worst window -1.3 against -2.9 (-2.4). A first look on
    other windows of earlier models gave the same order (fine-tuned alone up to 7.7 points under the BN-adapted
    model on Agrawal and Waveform)."""
    max_seconds: float = 20.0
    """Wall-clock budget for fine-tuning. The first round stops at it; a later round starts only if the one
    before would fit again, and one cut short anyway is discarded (the candidate is the last complete round's)."""

    def __post_init__(self) -> None:
        for name in ("steps", "rounds", "batch_size", "anchor_batch_size", "bn_batch_size", "min_train_labels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.anchor_weight < 0 or self.entropy_weight < 0:
            raise ValueError("anchor_weight and entropy_weight must be >= 0")
        if self.self_label_threshold is not None and not 0.0 < self.self_label_threshold <= 1.0:
            raise ValueError(f"self_label_threshold must be in (0, 1] or None, got {self.self_label_threshold}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if not 0.0 <= self.finetuned_weight <= 1.0:
            raise ValueError(f"finetuned_weight must be in [0, 1], got {self.finetuned_weight}")
        if not 0.0 <= self.rotate_degrees <= 180.0:
            raise ValueError(f"rotate_degrees must be in [0, 180], got {self.rotate_degrees}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AdaptConfig":
        return cls(**d)


@dataclass
class AdaptResult:
    """The candidate (CPU, eval mode, never yet served) and how it was made."""

    candidate: Classifier
    log: dict[str, Any] = field(default_factory=dict)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def predict_proba(model: Classifier, x: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Calibrated probabilities ``(n, k)`` in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x).to(device)
    out = [torch.softmax(model(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, model.config.num_classes), np.float32)


def served_prior(model: Classifier) -> np.ndarray:
    """The class prior ``model``'s probabilities assume (`Classifier.served_prior`), as float64 numbers: a label-shift
    correction's is the prior it corrects to."""
    return model.served_prior().detach().cpu().double().numpy()


def embed(model: Classifier, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Encoder embeddings ``(n, dim)`` in eval mode (the model's mode is restored), for comparing distributions."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    with torch.inference_mode():
        out = [model.embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, model.config.embed_dim), np.float32)


@torch.no_grad()
def classes_of(model: Classifier, z: np.ndarray) -> np.ndarray:
    """The classes ``model`` predicts from its own embeddings ``z`` (`embed`): its head alone, no second pass."""
    z_t = torch.as_tensor(np.asarray(z, dtype=np.float32), device=next(model.parameters()).device)
    return model.logits_of(z_t).argmax(1).cpu().numpy()


def self_label(model: Classifier, window_x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The window inputs ``model`` predicts with confidence >= ``threshold``, and those predictions."""
    p = predict_proba(model, window_x)
    keep = p.max(axis=1) >= threshold
    return window_x[keep], p.argmax(axis=1)[keep].astype(np.int64)


def trainable_parameters(model: Classifier, which: str) -> list[nn.Parameter]:
    """The parameters ``which`` names (see `AdaptConfig.trainable`)."""
    if which == "all":
        return list(model.parameters())
    params = list(model.head.parameters())
    if which == "norm_head":
        params += [p for m in _batchnorms(model) for p in m.parameters()]
    return params


def prior_weights(y: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Sampling weights under which each class ``c`` of ``y`` is drawn with probability ``prior[c]`` (renormalised
    over the classes present), uniformly within the class.

    The buffer bounds every class alike and the anchors hold up to 20 of each, so both are nearer equal shares
    than a skewed problem is; sampled as they are, a candidate learns equal shares and over-predicts the rare
    classes (on river's Waveform drawn to 80/15/5, one moved a 15% class to 36% of its predictions and served
    4 points under the frozen model). With a uniform prior this is class-balanced sampling.

    >>> prior_weights(torch.tensor([0, 0, 0, 1]), torch.tensor([0.5, 0.5])).tolist()
    [0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.5]
    """
    counts = torch.bincount(y, minlength=len(prior)).clamp_min(1).float()
    return prior.to(counts)[y] / counts[y]


def finetune(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    anchors_x: torch.Tensor,
    anchors_y: torch.Tensor,
    window_x: torch.Tensor,
    config: AdaptConfig,
    generator: torch.Generator,
    deadline: float,
) -> int:
    """Fine-tune ``model`` in place; returns the steps done (fewer if ``deadline`` passed).

    BatchNorm running statistics are frozen (momentum 0) while each batch is
    normalised with its own statistics.
    """
    norms = _batchnorms(model)
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    opt = torch.optim.Adam(trainable_parameters(model, config.trainable), lr=config.lr,
                           weight_decay=config.weight_decay)
    prior = model.class_prior.detach().float()
    weights = prior_weights(y, prior)
    anchor_weights = prior_weights(anchors_y, prior) if len(anchors_y) else None
    view = _augmentation(model, config.rotate_degrees) if config.augment else None
    model.train()
    done = 0
    try:
        for _ in range(config.steps):
            if time.perf_counter() > deadline:
                break
            b = torch.multinomial(weights, config.batch_size, replacement=True, generator=generator)
            xb = x[b] if view is None else view(x[b], generator)
            loss = F.cross_entropy(model.raw_logits(xb), y[b])
            if config.anchor_weight > 0 and len(anchors_x) > 1:
                a = torch.multinomial(anchor_weights, config.anchor_batch_size, replacement=True, generator=generator)
                xa = anchors_x[a] if view is None else view(anchors_x[a], generator)
                loss = loss + config.anchor_weight * F.cross_entropy(model.raw_logits(xa), anchors_y[a])
            if config.entropy_weight > 0:
                w = torch.randint(len(window_x), (config.batch_size,), generator=generator)
                p = torch.softmax(model.raw_logits(window_x[w]), dim=1)
                loss = loss - config.entropy_weight * (p * torch.log(p.clamp_min(1e-8))).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.eval()
    return done


def _augmentation(model: Classifier,
                  rotate_degrees: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """Random 1-pixel shifts, half of them also rotated, for images; None for tabular inputs.

    Seeing each pseudo-labelled image at another small angle or offset is what lets
    the easy, confident images teach the hard ones: on the validation split it raised
    the mean gap closed from 0.56 to 0.60 (rotated digits from 0.30 to 0.59,
    bench/results/recipes.md), where photometric views (noise, blur, erasing) lowered it.
    """
    if len(model.config.input_shape) != 3:
        return None
    from driftwise.models.augment import RandomRotation, RandomShift, ViewTransform

    if rotate_degrees == 0:
        return RandomShift(1)
    return ViewTransform([RandomShift(1), RandomRotation(rotate_degrees, p=0.5)])


def refit_temperature_on_anchors(model: Classifier, anchors_x: torch.Tensor, anchors_y: torch.Tensor) -> float:
    """Temperature fitted on the anchors, with BatchNorm re-estimated on them (their own domain)."""
    probe = copy.deepcopy(model)
    recalibrate_batchnorm(probe, anchors_x)
    probe.eval()
    with torch.no_grad():
        logits = probe.raw_logits(anchors_x)
    return fit_temperature(logits, anchors_y)


def adapt(
    model: Classifier,
    *,
    window_x: np.ndarray,
    pseudo_x: np.ndarray,
    pseudo_y: np.ndarray,
    anchors_x: np.ndarray,
    anchors_y: np.ndarray,
    feedback_x: np.ndarray | None = None,
    feedback_y: np.ndarray | None = None,
    config: AdaptConfig | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AdaptResult:
    """Make a candidate from ``model`` (left untouched) for the domain ``window_x`` comes from.

    ``pseudo_x/pseudo_y`` are class-balanced confident pseudo-labels (the buffer),
    ``anchors_x/anchors_y`` the labeled anchor set saved with the model,
    ``feedback_x/feedback_y`` optional true labels from the feedback topic.
    """
    config = config or AdaptConfig()
    shape = model.config.input_shape
    k = model.config.num_classes
    window_x = _inputs(window_x, shape, "window_x")
    if len(window_x) < 2:
        raise ValueError("window_x needs at least 2 inputs to re-estimate BatchNorm statistics")
    pseudo_x, pseudo_y = _labeled(pseudo_x, pseudo_y, shape, k, "pseudo")
    anchors_x, anchors_y = _labeled(anchors_x, anchors_y, shape, k, "anchors")
    fb_x, fb_y = _labeled(feedback_x, feedback_y, shape, k, "feedback")
    start = time.perf_counter()
    deadline = start + config.max_seconds
    report = progress or (lambda stage, done, total: None)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dev = torch.device(device)
    tensor = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731
    win, ax, ay = tensor(window_x), tensor(anchors_x), tensor(anchors_y, torch.int64)

    base = copy.deepcopy(model).to(dev)
    report("batchnorm", 0, 1)
    recalibrate_batchnorm(base, win, config.bn_batch_size)
    base.eval()
    log: dict[str, Any] = {"n_window": len(window_x), "n_pseudo": len(pseudo_y), "n_feedback": len(fb_y),
                           "n_anchors": len(anchors_y), "bn_s": time.perf_counter() - start, "rounds": []}
    report("batchnorm", 1, 1)
    candidate, last_round_s = base, 0.0
    for r in range(config.rounds):
        t0 = time.perf_counter()
        if t0 + ROUND_MARGIN * last_round_s > deadline:
            # Every round trains from the BatchNorm-adapted base, so a round cut short would replace a fully
            # trained candidate with a barely trained one (in the service, on two shared cores, the last round
            # often got 5-15 of its 100 steps): stop with the last complete round instead. (The first round has
            # no time yet to go by: it starts unless the budget is already spent.)
            log["rounds"].append({"round": r, "skipped": "out of time"})
            break
        own_x, own_y = (np.zeros((0, *shape), np.float32), np.zeros(0, np.int64))
        if config.self_label_threshold is not None:
            own_x, own_y = self_label(candidate, window_x, config.self_label_threshold)
        train_x = np.concatenate([pseudo_x, fb_x, own_x])
        train_y = np.concatenate([pseudo_y, fb_y, own_y])
        entry: dict[str, Any] = {"round": r, "n_self_labels": len(own_y), "n_train": len(train_y),
                                 "class_counts": np.bincount(train_y, minlength=k).tolist()}
        if len(train_y) < config.min_train_labels:
            entry["skipped"] = "too few labels"
            log["rounds"].append(entry)
            break
        trained = copy.deepcopy(base)
        entry["steps"] = finetune(trained, tensor(train_x), tensor(train_y, torch.int64), ax, ay, win,
                                  config, generator, deadline)
        if r > 0 and entry["steps"] < config.steps:  # cut short by the deadline after all: keep the last round's
            entry.update(seconds=time.perf_counter() - t0, discarded="out of time before its last step")
            log["rounds"].append(entry)
            break
        recalibrate_batchnorm(trained, win, config.bn_batch_size)
        candidate = trained.eval()
        entry["seconds"] = last_round_s = time.perf_counter() - t0
        log["rounds"].append(entry)
        report("finetune", r + 1, config.rounds)
    weight = 1.0 if len(fb_y) else config.finetuned_weight  # true labels are not guesses: no hedging
    if candidate is not base and weight < 1.0:
        candidate = average_weights(base, candidate, weight, win, config.bn_batch_size)
    log["finetuned_weight"] = weight
    if config.refit_temperature and len(anchors_y) > 1:
        candidate.temperature.fill_(refit_temperature_on_anchors(candidate, ax, ay))
    log["temperature"] = float(candidate.temperature)
    log["total_s"] = time.perf_counter() - start
    return AdaptResult(candidate.cpu().eval(), log)


def average_weights(start: Classifier, finetuned: Classifier, weight: float, window: torch.Tensor,
                    bn_batch_size: int = 256) -> Classifier:
    """A copy of ``finetuned`` whose floating-point weights and buffers are ``weight * finetuned + (1 - weight) *
    start`` (integer buffers, such as BatchNorm's batch counts, are the fine-tuned model's), with BatchNorm
    re-estimated on ``window`` for the averaged weights; in eval mode.

    >>> import torch
    >>> from driftwise.models.config import ModelConfig
    >>> a = Classifier(ModelConfig(encoder="mlp", input_shape=(4,), num_classes=3))
    >>> b = copy.deepcopy(a)
    >>> with torch.no_grad():
    ...     _ = [p.add_(1.0) for p in b.parameters()]
    >>> mid = average_weights(a, b, 0.5, torch.randn(32, 4))
    >>> all(torch.allclose(m, x + 0.5) for m, x in zip(mid.parameters(), a.parameters()))
    True
    """
    own, theirs = start.state_dict(), finetuned.state_dict()
    mixed = copy.deepcopy(finetuned)
    mixed.load_state_dict({name: weight * value + (1.0 - weight) * own[name].to(value.device)
                           if value.is_floating_point() else value for name, value in theirs.items()})
    recalibrate_batchnorm(mixed, window, bn_batch_size)
    return mixed.eval()


def _inputs(x: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape (n, {', '.join(map(str, shape))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x


def _labeled(x: np.ndarray | None, y: np.ndarray | None, shape: tuple[int, ...], k: int,
             name: str) -> tuple[np.ndarray, np.ndarray]:
    if x is None or y is None or len(y) == 0:
        if (x is None) != (y is None):
            raise ValueError(f"{name}_x and {name}_y must be given together")
        return np.zeros((0, *shape), np.float32), np.zeros(0, np.int64)
    x = _inputs(x, shape, f"{name}_x")
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
        raise ValueError(f"{name}_y must be {len(x)} integer labels in [0, {k}), got {y.dtype} {y.shape}")
    return x, y.astype(np.int64)
