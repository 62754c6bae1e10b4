r"""Steering a flow model of 8×8 digits: induce or remove a digit class or a stroke style.

AcT (Rodriguez et al. 2024, "Controlling Language and Diffusion Models by Transporting
Activations") steers a generative model by moving the activations of some of its layers with
per-channel 1-D transport maps fitted between a *source* set (images without the concept) and
a *target* set (images with it); LinEAS (Rodriguez et al. 2025) fits the same kind of maps
jointly. Here the generator is a flow model (:mod:`otkit.flows`): a velocity network
v_θ(x, t) carries noise x₀ ~ N(0, I₆₄) to digits x₁ by integrating dx/dt = v_θ(x, t) from
t = 0 to 1, and the steered model is sampled with the intervention active at every step.

**Which activations.** The hooked layers are the four time-conditioned conv blocks of
:class:`~otkit.flows.VelocityConvNet` (outputs ``[B, C, 8, 8]``), seen through
:class:`SteerableVelocityNet` in one of two ways (``neurons``):

* ``"pixels"`` (default): every (channel, pixel) pair is a neuron with its own map
  (modules ``neurons.0`` … ``neurons.3``, activations ``[B, C·64]``);
* ``"channels"``: AcT's recipe for images, one map per channel shared by all positions
  (modules ``net.blocks.0`` …), fitted on every position (``fit_act``'s default) or on the
  activations mean-pooled over the 8×8 positions (``pool="mean"``).

On these tiny images a digit's class lives in *where* the ink is, which a map shared by all
positions cannot target: measured on the quick flow, channel maps move the rate of class 3
from 0.142 to at most 0.158 (induce) or 0.138 (remove) at λ = 1 fitted on position means,
and to 0.144–0.146 either way fitted on every position, whatever the estimator, while pixel
maps reach 0.53 and 0.02 (numbers in :func:`digit_steering_task`).

The network sees images x_t at every time t, so the activations are recorded on the
flow-matching interpolants

.. math::
    x_t = (1 - t)\, x_0 + t\, x_1, \qquad x_0 \sim N(0, I), \quad x_1 \text{ a real digit},

at the very times the Euler sampler evaluates v_θ, t ∈ {0, 1/NFE, …, (NFE − 1)/NFE}. The
interpolants have, at each t, the flow's own marginal law (that is what flow matching fits),
so the maps are fitted on the activations they will meet while sampling. One batch is one
time t: the source and the target batches use the same times *and the same noise* x₀, so the
two activation clouds differ only through x₁ — through the concept — and not through t, whose
effect on the activations is much larger. A single map per neuron serves all times (AcT on
diffusion models does the same). (Conditioning on x₁'s class is not conditioning on where the
ODE path ends: at small t the interpolants carry almost no class signal, so the maps act mostly
late in the sampling.)

**Concepts** (:data:`CONCEPTS`): a digit class 0–9 (x₁ of that class versus the other
classes), or a style: ``"thick"`` / ``"thin"``, the top / bottom third of the digits by ink
(mean pixel intensity) *within each class* — splitting inside each class keeps the style
separate from the class (ones are thin, zeros and eights thick). ``mode="induce"`` moves
"without the concept" (source) to "with it" (target); ``mode="remove"`` the reverse. The
style is a weak concept for these maps: on the quick flow no estimator moved the share of
thick samples by more than 0.04 at λ = 1 (pixels or channels), so it serves as a negative
control rather than a demonstration.

**Measures.** A small digits classifier (:func:`~otkit.flows.digits.train_digits_classifier`)
labels the samples: ``concept_rate`` is the share predicted as the class (for a style: the
share whose ink lies beyond that class's tertile of the real digits). ``frechet`` is the
Fréchet distance (squared, as FID) between the classifier features of the samples and of the
real held-out test digits — a quality check; removing or inducing a class changes the class
mix, so it rises even for perfect digits, and much (real training digits of which half are
threes score about 100, against a floor of 2–5). ``frechet_floor`` is the score of real
training digits, the best a generator can reach at that sample size.

**On the data manifold or not.** A steered sample that the classifier calls a 3 need not
look like a digit: pushed far enough, the maps make images that no real digit resembles but
that fall on the class's side of the classifier. Two checks, both set from real digits,
keep such samples from counting as success:

* per sample, ``confident_rate`` counts only the samples of the concept on which the
  classifier is at least as sure as on 90% of the real held-out digits
  (:attr:`DigitSteeringTask.confidence_floor`); ``digit_share`` is the share of samples, of
  any class, above that confidence;
* per set, ``mix_frechet`` is the Fréchet distance that *real* training digits with the
  sample's predicted class mix reach (the mixture of the per-class feature Gaussians,
  weighted by the predicted class frequencies): the part of ``frechet`` that steering may
  legitimately cause by changing the class mix. ``frechet − mix_frechet`` is what remains:
  how far the samples are from real digits of the classes they are given.
  :mod:`otkit.steering.study` bounds the rise of that remainder over the unsteered flow's by
  a multiple of :attr:`DigitSteeringTask.frechet_floor` (real against real).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..flows import VelocityConvNet, integrate, train_flow
from ..flows.digits import (
    DigitsScorer,
    frechet_distance,
    mean_covariance,
    train_digits_classifier,
)
from ..flows.distributions import Empirical, StandardNormal
from ..nn.velocity import broadcast_times
from ..validation import check_choice, check_count
from .hooks import steer
from .intervention import Intervention
from .maps import check_strength

__all__ = [
    "CONCEPTS",
    "MODES",
    "NEURONS",
    "MODULES",
    "SteerableVelocityNet",
    "DigitSteeringTask",
    "digit_steering_task",
    "ink",
]

#: The concepts a task can steer: digit classes and two stroke styles.
CONCEPTS = (*range(10), "thick", "thin")
#: Induce the concept (source = without, target = with) or remove it (the reverse).
MODES = ("induce", "remove")
#: How a steered layer's units are counted: its channels (one map for all positions) or
#: every (channel, pixel) pair. See :class:`SteerableVelocityNet`.
NEURONS = ("pixels", "channels")
#: The module pattern (for ``find_modules``) steered for each choice of :data:`NEURONS`.
MODULES = {"pixels": r"neurons\.\d+", "channels": r"net\.blocks\.\d+"}

# Share of each class called thick (top) or thin (bottom) by ink.
_STYLE_QUANTILE = 1.0 / 3.0


def ink(images: torch.Tensor) -> torch.Tensor:
    """Mean ink of digits ``[k, 64]`` or ``[k, 8, 8]`` (pixels in [-1, 1]) → ``[k]`` in [0, 1].

    Pixels are mapped to [0, 1] by (x + 1) / 2 (clipped first, since samples may overshoot)
    and averaged: a stroke-thickness score.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError("images must be a floating point torch.Tensor [k, 64] or [k, 8, 8]")
    if images.ndim < 2:
        raise ValueError(f"images must have shape [k, 64] or [k, 8, 8], got {tuple(images.shape)}")
    return ((images.clamp(-1.0, 1.0) + 1.0) / 2.0).flatten(1).mean(1)


class _Neurons(nn.Module):
    """``[B, C, H, W] → [B, C·H·W]``: a tap whose output has one column per (channel, pixel)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1)


class SteerableVelocityNet(nn.Module):
    """A trained :class:`~otkit.flows.VelocityConvNet` with taps exposing every pixel's units.

    Computes exactly ``net(x, t)``, but after each conv block the feature map ``[B, C, 8, 8]``
    also passes through a tap ``neurons.i`` that flattens it to ``[B, C·64]`` (and is
    reshaped back). Steering ``net.blocks.i`` moves each channel with one map shared by all
    positions (AcT's recipe for images); steering ``neurons.i`` gives each (channel, pixel)
    unit its own map. On 8×8 digits the class lives in *where* the ink is, which a map
    shared by all positions cannot target: the channel maps barely move
    the class (measured in :func:`digit_steering_task`'s docstring), the per-pixel ones do.
    """

    def __init__(self, net: VelocityConvNet) -> None:
        super().__init__()
        if not isinstance(net, VelocityConvNet):
            raise TypeError(f"net must be a VelocityConvNet, got {type(net).__name__}")
        self.net = net
        self.neurons = nn.ModuleList(_Neurons() for _ in net.blocks)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        net = self.net
        if x.ndim != 2 or x.shape[1] != net.dim:
            raise ValueError(f"x must have shape [k, {net.dim}], got {tuple(x.shape)}")
        h = x.view(-1, 1, net.side, net.side)
        temb = net.embed(broadcast_times(t, h))
        for block, tap in zip(net.blocks, self.neurons):
            h = block(h, temb)
            h = tap(h).view(h.shape)
        return net.out(h).reshape(x.shape)


def _check_concept(concept: object) -> int | str:
    return check_choice("concept", concept, CONCEPTS)  # type: ignore[return-value]


def _check_neurons(neurons: object) -> str:
    return check_choice("neurons", neurons, NEURONS)  # type: ignore[return-value]


def _check_mode(mode: object) -> str:
    return check_choice("mode", mode, MODES)  # type: ignore[return-value]


def _style_thresholds(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[10, 2]``: per class, the ink below which a digit is thin and above which it is thick."""
    amount = ink(x).double()
    q = torch.tensor([_STYLE_QUANTILE, 1.0 - _STYLE_QUANTILE], dtype=torch.float64)
    return torch.stack([torch.quantile(amount[labels == c], q) for c in range(10)])


def _has_concept(
    concept: int | str, x: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor
) -> torch.Tensor:
    """``[k]`` bool: which digits ``x`` (with classes ``labels``) show the concept."""
    if isinstance(concept, int):
        return labels == concept
    amount = ink(x).double()
    low, high = thresholds[labels, 0], thresholds[labels, 1]
    return amount > high if concept == "thick" else amount < low


@dataclass(frozen=True, eq=False)
class DigitSteeringTask:
    """A flow model of the digits, a classifier to judge it, and data to steer it by a concept.

    Build one with :func:`digit_steering_task`; :meth:`with_concept` gives the same flow and
    classifier with another concept or mode (no retraining).

    Attributes:
        model: the velocity network sampled from (the EMA weights), in eval mode, frozen.
        scorer: the digits classifier and its statistics.
        concept: a digit 0–9, ``"thick"`` or ``"thin"`` (module docstring).
        mode: ``"induce"`` or ``"remove"``.
        source, target: lists of batches ``(x_t [n, 64], t [n])`` to fit interventions on
            (one batch per sampler time; source = without the concept for ``"induce"``).
        modules: the module pattern to steer, :data:`MODULES` ``[neurons]``.
        neurons: ``"pixels"`` or ``"channels"`` (:class:`SteerableVelocityNet`).
        noise: ``[k, 64]`` the fixed starting noise of :meth:`samples` and :meth:`evaluate`.
        nfe: Euler steps of the sampler.
        training_seconds: wall time to train the flow (classifier excluded).
        classifier_seconds: wall time to train the classifier.
        frechet_floor: the Fréchet distance of k real training digits to the test digits.
        confidence_floor: the 10% quantile of the classifier's confidence (largest class
            probability) on the real held-out test digits: a sample at least as confident
            counts in ``confident_rate`` and ``digit_share``.
        seed: the seed everything was drawn with.
    """

    model: nn.Module = field(repr=False)
    scorer: DigitsScorer = field(repr=False)
    concept: int | str
    mode: str
    source: list[tuple[torch.Tensor, torch.Tensor]] = field(repr=False)
    target: list[tuple[torch.Tensor, torch.Tensor]] = field(repr=False)
    modules: str
    neurons: str
    noise: torch.Tensor = field(repr=False)
    nfe: int
    training_seconds: float
    classifier_seconds: float
    frechet_floor: float
    confidence_floor: float
    seed: int
    # The digits the batches are built from, the held-out statistics and the style thresholds.
    _train: tuple[torch.Tensor, torch.Tensor] = field(repr=False)
    _test_stats: tuple[torch.Tensor, torch.Tensor] = field(repr=False)
    _thresholds: torch.Tensor = field(repr=False)
    _examples: int = field(repr=False)
    # Per predicted class of the training digits: feature means [10, f] and second moments
    # [10, f, f] (float64), for the Fréchet distance of any class mix.
    _class_stats: tuple[torch.Tensor, torch.Tensor] = field(repr=False)

    # -- the model ---------------------------------------------------------------------

    @staticmethod
    def forward(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Run the velocity network on one batch ``(x_t [n, 64], t [n])`` → ``[n, 64]``."""
        x, t = batch
        return model(x, t)

    def with_concept(
        self, concept: int | str, mode: str = "induce", *, neurons: str | None = None
    ) -> DigitSteeringTask:
        """The same flow and classifier, with batches for another concept or mode (and neurons)."""
        concept, mode = _check_concept(concept), _check_mode(mode)
        neurons = self.neurons if neurons is None else _check_neurons(neurons)
        source, target = _concept_batches(
            *self._train, self._thresholds, concept, mode, self.nfe, self._examples, self.seed
        )
        return replace(
            self, concept=concept, mode=mode, source=source, target=target,
            neurons=neurons, modules=MODULES[neurons],
        )

    # -- sampling and scoring -----------------------------------------------------------

    def samples(
        self, intervention: Intervention | None, strength: float = 1.0, *, count: int | None = None
    ) -> torch.Tensor:
        """Digits ``[k, 8, 8]`` generated from the fixed noise with ``intervention`` at ``strength``.

        The intervention acts at every Euler step. ``intervention=None`` (or ``strength=0``)
        samples the unsteered flow — bit for bit the same images. Pixels are as generated
        (they may overshoot [-1, 1] slightly). ``count``: only the first ``count`` noises.
        """
        strength = check_strength(strength)
        noise = self.noise
        if count is not None:
            noise = noise[: min(check_count("count", count), noise.shape[0])]
        if intervention is None:
            x = integrate(self.model, noise, nfe=self.nfe)
        else:
            if not isinstance(intervention, Intervention):
                raise TypeError(
                    f"intervention must be an Intervention or None, got {type(intervention).__name__}"
                )
            with steer(self.model, intervention, strength=strength):
                x = integrate(self.model, noise, nfe=self.nfe)
        if not torch.isfinite(x).all():
            raise ValueError("the steered flow produced NaN or inf pixels: lower the strength")
        return x.reshape(-1, 8, 8)

    def concept_mask(self, images: torch.Tensor) -> torch.Tensor:
        """``[k]`` bool: which digits ``[k, 8, 8]`` or ``[k, 64]`` show the concept (classifier)."""
        x = images.reshape(-1, 64).float()
        with torch.no_grad():
            labels = self.scorer.classifier(x).argmax(1)
        return _has_concept(self.concept, x, labels, self._thresholds)

    def score(self, images: torch.Tensor) -> dict[str, float]:
        """``concept_rate``, ``confident_rate``, ``digit_share``, ``frechet`` (to the held-out
        digits), ``mix_frechet`` (real digits with the same predicted class mix),
        ``confidence`` and ``ink`` (module docstring)."""
        x = images.reshape(-1, 64).float()
        feats = self.scorer.features(x)
        with torch.no_grad():
            probs = torch.softmax(self.scorer.classifier.head(feats), dim=1)
        mean, cov = mean_covariance(feats)
        confidence, labels = probs.max(1)
        has = _has_concept(self.concept, x, labels, self._thresholds)
        sure = confidence >= self.confidence_floor
        frequencies = torch.bincount(labels, minlength=10).double() / labels.numel()
        return {
            "concept_rate": float(has.double().mean()),
            "confident_rate": float((has & sure).double().mean()),
            "digit_share": float(sure.double().mean()),
            "frechet": frechet_distance(mean, cov, *self._test_stats),
            "mix_frechet": self.mix_frechet(frequencies),
            "confidence": float(confidence.double().mean()),
            "ink": float(ink(x).double().mean()),
        }

    def mix_frechet(self, frequencies: torch.Tensor) -> float:
        """The Fréchet distance to the held-out digits of real training digits drawn with class
        ``frequencies`` ``[10]`` (classes as the classifier predicts them): the mixture of
        the per-class feature Gaussians, weights renormalized to sum to 1."""
        w = torch.as_tensor(frequencies, dtype=torch.float64).flatten()
        if w.shape != (10,) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("frequencies must be 10 finite non-negative numbers, not all 0")
        w = w / w.sum()
        means, moments = self._class_stats
        mean = w @ means
        cov = torch.einsum("c,cij->ij", w, moments) - torch.outer(mean, mean)
        return frechet_distance(mean, (cov + cov.T) / 2, *self._test_stats)

    def evaluate(
        self, intervention: Intervention | None, strengths: Sequence[float] = (0.0, 0.5, 1.0)
    ) -> list[dict[str, Any]]:
        """One row per strength: ``strength`` and the keys of :meth:`score`.

        Every row samples the same noise (:attr:`noise`), so rows differ only by the steering.
        """
        if isinstance(strengths, (int, float)) or not isinstance(strengths, Sequence) or not strengths:
            raise ValueError("strengths must be a non-empty sequence of numbers in [0, 1]")
        values = [check_strength(s, "strengths") for s in strengths]
        return [{"strength": s, **self.score(self.samples(intervention, s))} for s in values]


def _class_statistics(scorer: DigitsScorer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature means ``[10, f]`` and second moments ``[10, f, f]`` of the digits ``x`` grouped
    by the classifier's predicted class (float64; a class never predicted gets zeros)."""
    feats = scorer.features(x).double()
    with torch.no_grad():
        labels = scorer.classifier.head(feats.float()).argmax(1)
    f = feats.shape[1]
    means, moments = torch.zeros(10, f, dtype=torch.float64), torch.zeros(10, f, f, dtype=torch.float64)
    for c in range(10):
        fc = feats[labels == c]
        if fc.shape[0]:
            means[c] = fc.mean(0)
            moments[c] = fc.T @ fc / fc.shape[0]
    return means, moments


def _concept_batches(
    x: torch.Tensor,
    labels: torch.Tensor,
    thresholds: torch.Tensor,
    concept: int | str,
    mode: str,
    nfe: int,
    examples: int,
    seed: int,
) -> tuple[list, list]:
    """Source and target batches ``(x_t, t)``, one per sampler time, sharing times and noise."""
    has = _has_concept(concept, x, labels, thresholds)
    gen = torch.Generator().manual_seed(20_000 + seed)  # away from training and sampling draws
    with_c = x[has][torch.randperm(int(has.sum()), generator=gen)]
    without = x[~has][torch.randperm(int((~has).sum()), generator=gen)]
    n = min(examples, with_c.shape[0], without.shape[0])
    with_c, without = with_c[:n], without[:n]
    source_x1, target_x1 = (without, with_c) if mode == "induce" else (with_c, without)
    source, target = [], []
    for step in range(nfe):
        x0 = torch.randn(n, 64, generator=gen)
        t = torch.full((n,), step / nfe)
        tt = t[:, None]
        source.append(((1 - tt) * x0 + tt * source_x1, t))
        target.append(((1 - tt) * x0 + tt * target_x1, t))
    return source, target


def digit_steering_task(
    concept: int | str = 3,
    mode: str = "induce",
    *,
    neurons: str = "pixels",
    seed: int = 0,
    quick: bool = True,
    steps: int | None = None,
    channels: int | None = None,
    coupling: str | float = "independent",
    classifier_epochs: int | None = None,
    nfe: int = 20,
    samples: int = 500,
    examples: int = 128,
) -> DigitSteeringTask:
    """Train a flow on the digits and a classifier; build the steering data for ``concept``.

    Args:
        concept: a digit 0–9, ``"thick"`` or ``"thin"`` (module docstring).
        mode: ``"induce"`` (source = digits without the concept) or ``"remove"``.
        neurons: ``"pixels"`` (default: one map per channel and pixel) or ``"channels"``
            (one per channel, shared by all positions), see
            :class:`SteerableVelocityNet`.
        seed: seeds the train/test split, the flow and classifier initializations and
            training, the steering batches and the sampling noise.
        quick: small budgets (one CPU thread: about 10 s for the flow, 3 s for the
            classifier); ``quick=False`` trains a 32-channel flow for 3,000 steps (minutes).
        steps: flow training steps (default 1,000 quick / 3,000), batches of 64 / 128.
        channels: width of the velocity conv net (default 16 quick / 32).
        coupling: ``"independent"``, ``"exact"`` or a relative ε for Sinkhorn
            (:func:`~otkit.flows.train_flow`).
        classifier_epochs: epochs of the digits classifier (default 8 quick / 20).
        nfe: Euler steps of the sampler; the steering batches use the same times.
        samples: k, the number of fixed noises sampled and scored (≥ 2; a few hundred for
            a meaningful Fréchet distance).
        examples: digits per side (source and target) at each time, capped by the smaller
            side (a class has about 144 training digits).

    Returns:
        a :class:`DigitSteeringTask`.

    Measured (seed 0, quick, one CPU thread): flow 12–14 s, classifier 3 s (98.3% test
    accuracy), Fréchet floor 1.96, unsteered flow 38.7. Class 3 with pixel neurons and
    :func:`~otkit.steering.fit_act` (500 samples; rate / Fréchet at λ = 0, 0.5, 1):

    ===========  ==========  ====================  ====================
    mode         estimator   rate                  Fréchet
    ===========  ==========  ====================  ====================
    induce       linear_act  0.142, 0.308, 0.534   38.7, 92.8, 202.3
    induce       gaussian    0.142, 0.310, 0.538   38.7, 92.7, 202.8
    induce       mean_shift  0.142, 0.312, 0.538   38.7, 91.6, 195.9
    remove       linear_act  0.142, 0.052, 0.024   38.7, 75.9, 177.2
    remove       gaussian    0.142, 0.054, 0.022   38.7, 77.8, 184.1
    remove       mean_shift  0.142, 0.062, 0.024   38.7, 77.5, 159.9
    ===========  ==========  ====================  ====================

    :func:`~otkit.steering.fit_lineas` (20 steps, 4 batches a step: 49 s) induces 0.142,
    0.312, 0.546 (Fréchet 38.7, 95.7, 219.2). Part of the Fréchet rise is the class mix
    itself: real training digits score 96.5 when half are threes and 17.3 with no three, so
    the steered samples are also less digit-like, mostly when removing: read the rate
    together with the Fréchet distance.
    """
    from ..data.samplers import digits  # lazily: scikit-learn is optional

    concept, mode = _check_concept(concept), _check_mode(mode)
    neurons = _check_neurons(neurons)
    check_count("seed", seed, minimum=0)
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    steps = check_count("steps", steps if steps is not None else (1000 if quick else 3000))
    channels = check_count("channels", channels if channels is not None else (16 if quick else 32))
    epochs = check_count(
        "classifier_epochs", classifier_epochs if classifier_epochs is not None else (8 if quick else 20)
    )
    nfe = check_count("nfe", nfe)
    k = check_count("samples", samples, minimum=2)
    examples = check_count("examples", examples, minimum=2)

    start = time.perf_counter()
    scorer = train_digits_classifier(epochs=epochs, seed=seed)
    classifier_seconds = time.perf_counter() - start

    x_train, y_train = digits(split="train", seed=seed, return_labels=True)
    x_test = digits(split="test", seed=seed)
    with torch.random.fork_rng(devices=[]):  # seeded init, global state left alone
        torch.manual_seed(seed)
        net = VelocityConvNet(side=8, channels=channels, depth=4)
    flow = train_flow(
        net, StandardNormal(64), Empirical(x_train), coupling=coupling, steps=steps,
        batch_size=64 if quick else 128, lr=2e-3, seed=seed,
    )
    model = SteerableVelocityNet(flow.ema_model).eval().requires_grad_(False)

    noise = torch.randn(k, 64, generator=torch.Generator().manual_seed(30_000 + seed))
    test_stats = mean_covariance(scorer.features(x_test))
    floor_index = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(seed))
    floor_stats = mean_covariance(scorer.features(x_train[floor_index[: min(k, x_train.shape[0])]]))
    thresholds = _style_thresholds(x_train, y_train)
    class_stats = _class_statistics(scorer, x_train)
    with torch.no_grad():
        test_confidence = torch.softmax(scorer.classifier(x_test), dim=1).max(1).values
    confidence_floor = float(torch.quantile(test_confidence.double(), 0.1))
    source, target = _concept_batches(x_train, y_train, thresholds, concept, mode, nfe, examples, seed)
    return DigitSteeringTask(
        model=model, scorer=scorer, concept=concept, mode=mode, source=source, target=target,
        modules=MODULES[neurons], neurons=neurons, noise=noise, nfe=nfe, training_seconds=flow.training_seconds,
        classifier_seconds=classifier_seconds,
        frechet_floor=frechet_distance(*floor_stats, *test_stats),
        confidence_floor=confidence_floor, seed=seed,
        _train=(x_train, y_train), _test_stats=test_stats, _thresholds=thresholds,
        _examples=examples, _class_stats=class_stats,
    )
