"""The Data-Quality Illusion: what classifier-based quality filtering selects, and why.

Nait Saada, Béthune, Klein, Grangier, Cuturi, Ablin (2025), "The Data-Quality Illusion:
Rethinking Classifier-Based Quality Filtering for LLM Pretraining" (arXiv:2510.00866). CQF
improves downstream tasks but not the language-modelling loss on the high-quality set, because
it also filters the high-quality set. :mod:`~otkit.dataquality.corpus` generates a pool and an
HQ set from Markov-chain domains with exact densities; :mod:`~otkit.dataquality.selection`
holds the selectors (random, CQF, oracle density ratio, CRISP, unbalanced-OT selection);
:mod:`~otkit.dataquality.study` trains small transformers on each selection; notebook 14.
"""

from .corpus import (
    JUNK,
    Corpus,
    MarkovDomains,
    make_corpus,
    make_domains,
    mixture_log_prob,
)
from .selection import (
    QualityClassifier,
    Selection,
    budget_count,
    embed_documents,
    fit_quality_classifier,
    hashed_ngrams,
    received_mass,
    select_cqf,
    select_crisp,
    select_oracle,
    select_ot,
    select_random,
    select_top,
)
from .study import (
    DQ_TRAINER,
    GRID_METHODS,
    METHODS,
    ArmResult,
    ClozeTask,
    DomainArm,
    ImplicitFilter,
    KeepFractionGrid,
    StudySetup,
    cloze_accuracy,
    implicit_filter,
    keep_fraction_grid,
    lm_loss,
    make_cloze,
    make_domain_arm,
    make_permutation_arm,
    mixture_loss,
    read_claims,
    run_seed,
    select,
    train_lm,
)

__all__ = [
    "JUNK",
    "MarkovDomains",
    "Corpus",
    "make_domains",
    "make_corpus",
    "mixture_log_prob",
    "Selection",
    "QualityClassifier",
    "budget_count",
    "hashed_ngrams",
    "fit_quality_classifier",
    "embed_documents",
    "select_top",
    "select_random",
    "select_cqf",
    "select_oracle",
    "select_crisp",
    "select_ot",
    "received_mass",
    "METHODS",
    "DQ_TRAINER",
    "StudySetup",
    "DomainArm",
    "ClozeTask",
    "ArmResult",
    "ImplicitFilter",
    "make_domain_arm",
    "make_permutation_arm",
    "make_cloze",
    "select",
    "train_lm",
    "lm_loss",
    "cloze_accuracy",
    "implicit_filter",
    "mixture_loss",
    "GRID_METHODS",
    "KeepFractionGrid",
    "keep_fraction_grid",
    "run_seed",
    "read_claims",
]
