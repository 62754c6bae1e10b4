"""Discovering ODEs with transformers: symbolic recovery from one noisy trajectory.

Becker, Klein, Neitz, Parascandolo, Kilbertus (2022), "Discovering ordinary differential
equations that govern time-series", and (2023) "Predicting ordinary differential equations with
transformers" (NSODE). A sequence-to-sequence transformer reads the samples (t_i, y_i) of one
noisy, irregularly sampled solution of a scalar ODE ẏ = f(y) and writes f in prefix notation;
it is pre-trained once on generated ODEs, and inference is a few forward passes.

- :mod:`~otkit.odes.grammar`: the library of terms, skeletons, prefix tokens, sympy.
- :mod:`~otkit.odes.generator`: random equations, batched RK4, rejection, sampling, noise.
- :mod:`~otkit.odes.model`: float encoding, the encoder–decoder with its two-hot constant
  head, training, beam search.
- :mod:`~otkit.odes.fitting`: least-squares constants, BIC selection, exhaustive enumeration.
- :mod:`~otkit.odes.sindy`: the SINDy baseline (STLSQ on finite differences).
- :mod:`~otkit.odes.study`: the recovery study of notebook 18.
"""

from .fitting import (
    Fit,
    enumerate_fit,
    fit_constants,
    r2_score,
    refine,
    select,
    simulate,
)
from .generator import ODEBatch, add_noise, generate, rk4, sample_times, vector_field
from .grammar import (
    SKELETONS,
    TERMS,
    features,
    from_sympy,
    parse_tokens,
    simplify,
    skeleton_name,
    skeleton_tokens,
    to_sympy,
)
from .model import (
    ODEModelConfig,
    ODETransformer,
    TrainedODEModel,
    beam_search,
    constant_bins,
    float_decode,
    float_encode,
    predict_constants,
    train_model,
    two_hot_decode,
    two_hot_encode,
)
from .sindy import sindy, stlsq
from .study import (
    TRANSFORMER_METHODS,
    ConstantAccuracy,
    RecoveryStudy,
    constant_accuracy,
    join_methods,
    merge_studies,
    predict,
    read_claims,
    read_constant_claims,
    recovery_study,
)

__all__ = [
    "TERMS", "SKELETONS", "features", "skeleton_tokens", "parse_tokens", "to_sympy",
    "from_sympy", "simplify", "skeleton_name",
    "ODEBatch", "rk4", "vector_field", "sample_times", "add_noise", "generate",
    "ODEModelConfig", "ODETransformer", "TrainedODEModel", "train_model", "beam_search",
    "float_encode", "float_decode", "constant_bins", "two_hot_encode", "two_hot_decode",
    "predict_constants",
    "Fit", "fit_constants", "refine", "select", "enumerate_fit", "simulate", "r2_score",
    "sindy", "stlsq",
    "RecoveryStudy", "predict", "recovery_study", "merge_studies", "read_claims",
    "TRANSFORMER_METHODS", "join_methods", "read_constant_claims", "ConstantAccuracy",
    "constant_accuracy",
]
