"""Geometries of Truth: are linear truth probes universal across tasks?

Azizian, Kirchhof, Ndiaye, …, Cuturi (2025), "The Geometries of Truth Are Orthogonal Across
Tasks". Probes predicting whether a model's answer is correct from its activations work within
a task, but transfer across tasks near chance and point in near-orthogonal directions; the
activations cluster by task. :mod:`~otkit.truth.study` checks this on a small transformer
trained from scratch on five generated tasks (:mod:`otkit.nn.transformer`,
:mod:`otkit.data.tasks`); notebook 13.
"""

from .study import (
    BAND,
    TRUTH_MIX,
    TRUTH_SPEC,
    TRUTH_TRAINER,
    MultiTaskModel,
    ProbeStudy,
    answer_confidence,
    answer_correct,
    fit_probe,
    last_prompt_activations,
    probe_study,
    random_cosine,
    read_claims,
    summarize,
    task_accuracy,
    train_multitask,
)

__all__ = [
    "BAND",
    "TRUTH_SPEC",
    "TRUTH_MIX",
    "TRUTH_TRAINER",
    "MultiTaskModel",
    "ProbeStudy",
    "train_multitask",
    "answer_correct",
    "answer_confidence",
    "task_accuracy",
    "last_prompt_activations",
    "fit_probe",
    "probe_study",
    "random_cosine",
    "summarize",
    "read_claims",
]
