r"""A Fréchet score for generated 8×8 digits, on features of a small classifier of our own.

The Fréchet Inception Distance (FID; M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler,
S. Hochreiter, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium", NeurIPS 2017) fits a Gaussian to the features of real and of generated images
and reports the Fréchet (= 2-Wasserstein) distance between the two Gaussians,

.. math::
    d_F^2 = \|\mu_1 - \mu_2\|^2
        + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 - 2(\Sigma_1\Sigma_2)^{1/2}\big)

(D. C. Dowson, B. V. Landau, J. Multivariate Anal. 1982). Inception features mean nothing on
8×8 images, so here the features are the 64-unit penultimate layer of
:class:`DigitsClassifier`, a small conv net trained in seconds on the scikit-learn digits
(:func:`otkit.data.digits`, bundled with scikit-learn: nothing is downloaded).
:func:`train_digits_classifier` returns a :class:`DigitsScorer` holding the classifier, its
held-out accuracy and the real digits' feature statistics; ``scorer.score(samples)`` returns
:class:`DigitsScores`: the Fréchet distance, the classifier's confidence and the spread of the
predicted classes (a mode-collapse check).

Like FID, the score depends on the feature extractor (compare numbers only for one scorer:
same seed and settings) and is biased upwards at small sample sizes: compare models at equal
sample counts, and read ``scorer.real_frechet`` (real held-out digits scored against the
reference) as the floor a perfect generator reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..validation import check_choice, check_count, check_positive

__all__ = [
    "mean_covariance",
    "DigitsClassifier",
    "DigitsScorer",
    "DigitsScores",
    "train_digits_classifier",
    "frechet_distance",
    "REFERENCE_SPLITS",
]

#: The ``reference`` values :func:`train_digits_classifier` accepts.
REFERENCE_SPLITS = ("train", "all")

# Features are computed in batches of this many images (bounded memory for large samples).
_BATCH = 4096


def _as_images(name: str, x: object) -> Tensor:
    """``[k, 64]`` or ``[k, 1, 8, 8]`` floating-point digits → ``[k, 1, 8, 8]``."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [k, 64] or [k, 1, 8, 8], "
            f"got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} has dtype {x.dtype}; pass floating point pixels in [-1, 1]")
    if x.ndim == 2 and x.shape[1] == 64:
        return x.reshape(-1, 1, 8, 8)
    if x.ndim == 4 and tuple(x.shape[1:]) == (1, 8, 8):
        return x
    raise ValueError(
        f"{name} must have shape [k, 64] (flattened 8×8 digits) or [k, 1, 8, 8], "
        f"got {tuple(x.shape)}"
    )


class DigitsClassifier(nn.Module):
    """A small conv net for 8×8 digits in [-1, 1]: features ``[k, 64]`` and logits ``[k, 10]``.

    conv 3×3 (1 → 16) → ReLU → conv 3×3 (16 → 32) → ReLU → max-pool 2 → ``[32, 4, 4]`` →
    linear (512 → 64) → ReLU (the **features**) → linear (64 → 10) (the logits). Inputs are
    ``[k, 64]`` (as :func:`otkit.data.digits` returns them) or ``[k, 1, 8, 8]``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.hidden = nn.Linear(32 * 4 * 4, 64)
        self.head = nn.Linear(64, 10)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate activations ``[k, 64]`` (after ReLU) of digits ``[k, 64]`` or ``[k, 1, 8, 8]``."""
        h = _as_images("x", x)
        h = F.relu(self.conv1(h))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.hidden(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[k, 10]`` of digits ``[k, 64]`` or ``[k, 1, 8, 8]``."""
        return self.head(self.features(x))


# --------------------------------------------------------------------------------------
# the Fréchet distance
# --------------------------------------------------------------------------------------


def _as_float64(name: str, value: object, shape: tuple[int, ...]) -> Tensor:
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    t = torch.as_tensor(value).detach().to(device="cpu", dtype=torch.float64)
    if tuple(t.shape) != shape:
        expected = "[" + ", ".join(str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return t


def _sqrt_psd(s: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix by ``eigh`` (round-off negatives clamped to 0)."""
    lam, u = torch.linalg.eigh(s)
    return (u * lam.clamp_min(0.0).sqrt()) @ u.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    r"""The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2): the squared 2-Wasserstein one.

    .. math::
        d_F^2 = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
              - 2\operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}

    This is FID's ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½)``, computed in the symmetric form:
    Σ1Σ2 is similar to the symmetric PSD matrix Σ1^½ Σ2 Σ1^½, so both have the same
    eigenvalues, and ``tr(Σ1Σ2)^½`` is the sum of their square roots. Taking them with
    ``torch.linalg.eigh`` in float64 (clamping round-off negatives at 0) needs no complex
    arithmetic and no ``scipy.linalg.sqrtm`` of a non-symmetric matrix, whose result picks up
    imaginary parts and loses accuracy when the covariances are singular (few samples, dead
    features). Same value as :func:`otkit.gaussian.w2_squared`; "Fréchet distance" follows the
    FID literature in naming the squared quantity.

    Args:
        mu1, mu2: ``[d]`` means (tensors or numpy arrays).
        cov1, cov2: ``[d, d]`` covariances (symmetric PSD; symmetrized here).

    Returns:
        d_F² ≥ 0 (clamped at 0 against round-off), as a float.
    """
    if not isinstance(mu1, (Tensor, np.ndarray)):
        raise TypeError(f"mu1 must be a torch.Tensor or numpy array, got {type(mu1).__name__}")
    if mu1.ndim != 1:
        raise ValueError(f"mu1 must have shape [d], got {tuple(mu1.shape)}")
    d = int(mu1.shape[0])
    if d == 0:
        raise ValueError("mu1 is empty: the features need at least one dimension")
    mu1 = _as_float64("mu1", mu1, (d,))
    mu2 = _as_float64("mu2", mu2, (d,))
    cov1 = _as_float64("cov1", cov1, (d, d))
    cov2 = _as_float64("cov2", cov2, (d, d))
    cov1, cov2 = 0.5 * (cov1 + cov1.T), 0.5 * (cov2 + cov2.T)
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    cross = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0.0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2.0 * cross
    return float(value.clamp_min(0.0))


def mean_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[f]`` and unbiased covariance ``[f, f]`` (divisor k − 1, as FID's ``np.cov``), float64."""
    f = features.double()
    mean = f.mean(0)
    centred = f - mean
    return mean, centred.T @ centred / (f.shape[0] - 1)


# --------------------------------------------------------------------------------------
# the scorer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsScores:
    """Quality scores of a sample of generated digits (:meth:`DigitsScorer.score`).

    Attributes:
        frechet: Fréchet distance (squared, as FID) between the Gaussian fits of the sample's
            classifier features and of the real digits' (lower is better; compare with
            ``DigitsScorer.real_frechet`` at similar sample sizes).
        confidence: mean over the sample of the largest softmax probability (≈ 1 for crisp
            digits, ≈ 0.1 for unrecognisable ones).
        class_frequencies: ``[10]`` share of the sample predicted as each class (sums to 1).
        class_balance: entropy of ``class_frequencies`` over log 10, in [0, 1]: 1 when every
            class is equally frequent, 0 when all samples fall in one class (mode collapse).
        predictions: ``[k]`` int64 predicted class of each sample.
        n: sample size k.
    """

    frechet: float
    confidence: float
    class_frequencies: Tensor
    class_balance: float
    predictions: Tensor
    n: int


@dataclass(frozen=True)
class DigitsScorer:
    """A trained :class:`DigitsClassifier` and the real digits' feature statistics.

    Attributes:
        classifier: the classifier, in eval mode, on CPU float32.
        accuracy: its accuracy on the held-out test split of :func:`otkit.data.digits`
            (same ``seed`` and ``test_fraction`` as in training).
        mean: ``[64]`` mean of the reference digits' features (float64).
        cov: ``[64, 64]`` their covariance (float64, divisor k − 1).
        reference: which digits the statistics describe: ``"train"`` (the classifier's
            training split) or ``"all"``.
        n_reference: how many digits they were computed from.
        real_frechet: the Fréchet distance of the real held-out test digits to the reference:
            the score of a perfect generator at that sample size (a floor, not 0, because of
            finite-sample bias; meaningless for ``reference="all"``, which contains them).
        n_test: the size of the test split.
    """

    classifier: DigitsClassifier
    accuracy: float
    mean: Tensor
    cov: Tensor
    reference: str
    n_reference: int
    real_frechet: float
    n_test: int

    @torch.no_grad()
    def features(self, samples: Tensor) -> Tensor:
        """Classifier features ``[k, 64]`` (float32, CPU) of digits ``[k, 64]`` or ``[k, 1, 8, 8]``."""
        images = _as_images("samples", samples).detach().to(device="cpu", dtype=torch.float32)
        return torch.cat([self.classifier.features(b) for b in images.split(_BATCH)])

    @torch.no_grad()
    def score(self, samples: Tensor) -> DigitsScores:
        """Score generated digits ``samples: [k, 64]`` (or ``[k, 1, 8, 8]``) in [-1, 1], k ≥ 2.

        Samples are scored as given (not clipped to [-1, 1]); they may live on any device
        and are moved to the CPU. Use a few hundred samples or more: the Fréchet term is
        biased upwards at small k (and its covariance is singular for k ≤ 64).
        """
        images = _as_images("samples", samples)
        if images.shape[0] < 2:
            raise ValueError(
                f"samples needs at least 2 digits (a covariance), got {images.shape[0]}"
            )
        if not torch.isfinite(images).all():
            raise ValueError("samples contains NaN or inf values")
        feats = self.features(images)
        probs = torch.softmax(self.classifier.head(feats), dim=1).double()  # [k, 10]
        mean, cov = mean_covariance(feats)
        predictions = probs.argmax(1)
        freq = torch.bincount(predictions, minlength=10).double() / predictions.numel()
        entropy = -(freq * freq.clamp_min(1e-300).log()).sum()
        return DigitsScores(
            frechet=frechet_distance(mean, cov, self.mean, self.cov),
            confidence=float(probs.max(1).values.mean()),
            class_frequencies=freq,
            class_balance=float(entropy / math.log(10)),
            predictions=predictions,
            n=int(images.shape[0]),
        )


def train_digits_classifier(
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    test_fraction: float = 0.2,
    reference: str = "train",
) -> DigitsScorer:
    """Train a :class:`DigitsClassifier` on the scikit-learn digits and build its scorer.

    Adam with cross-entropy on the ``"train"`` split of :func:`otkit.data.digits`
    (``test_fraction`` and ``seed`` set the split), on the CPU in float32; the defaults take a
    few seconds on one core and reach about 98–99% test accuracy. Weights, the split and the
    batch order all follow ``seed``; torch's global random state is left as it was.

    Args:
        epochs: passes over the training split.
        batch_size: digits per Adam step.
        lr: Adam's learning rate (halved every ``epochs // 3`` epochs).
        seed: seed of the split, the initialization and the batch order.
        test_fraction: share of each class held out to measure ``accuracy``.
        reference: the digits whose feature statistics ``score`` compares with: ``"train"``
            (default; keeps the test split held out, so ``real_frechet`` is honest) or
            ``"all"`` (all 1,797 digits).

    Returns:
        a :class:`DigitsScorer`.

    Raises:
        ImportError: scikit-learn (which ships the digits) is missing.
    """
    from ..data.samplers import digits  # lazily: scikit-learn is optional

    epochs = check_count("epochs", epochs)
    batch_size = check_count("batch_size", batch_size)
    lr = check_positive("lr", lr)
    check_choice("reference", reference, REFERENCE_SPLITS)
    split = dict(test_fraction=test_fraction, seed=seed, return_labels=True)
    x_train, y_train = digits(split="train", **split)
    x_test, y_test = digits(split="test", **split)

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global state
        torch.manual_seed(seed)
        model = DigitsClassifier()
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.5)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x_train.shape[0], generator=gen)
        for batch in order.split(batch_size):
            optimizer.zero_grad()
            F.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        schedule.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).double().mean())
        x_ref = x_train if reference == "train" else digits(split="all")
        mean, cov = mean_covariance(model.features(x_ref))
        test_mean, test_cov = mean_covariance(model.features(x_test))
    return DigitsScorer(
        classifier=model,
        accuracy=accuracy,
        mean=mean,
        cov=cov,
        reference=reference,
        n_reference=int(x_ref.shape[0]),
        real_frechet=frechet_distance(test_mean, test_cov, mean, cov),
        n_test=int(x_test.shape[0]),
    )
