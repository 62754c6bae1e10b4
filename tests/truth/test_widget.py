"""The truth-probe explorer without a browser: its state is the study's own numbers."""

import numpy as np
import pytest

from otkit.data.tasks import TaskSpec
from otkit.nn.trainer import TrainerConfig
from otkit.truth import (
    answer_correct,
    last_prompt_activations,
    probe_study,
    train_multitask,
)
from otkit.truth.transfer import support
from widgets.truth import CS, L1_CS, TruthExplorer, compute_truth

SPEC = TaskSpec(modulus=5, compare_max=8, count_length=3, count_symbols=2, reverse_length=3,
                reverse_symbols=4, n_entities=6, n_relations=2)


@pytest.fixture(scope="module")
def trained():
    config = TrainerConfig(steps=150, batch_size=32, lr=3e-3, warmup=5, eval_every=50)
    return train_multitask(spec=SPEC, n_train=300, n_eval=200, trainer_config=config, seed=0)


def test_the_state_is_the_studys(trained):
    state = compute_truth(2, 1.0, trained=trained)
    acts = last_prompt_activations(trained.model, trained.data)
    study = probe_study(acts, answer_correct(trained.model, trained.data), trained.data.task,
                        C=1.0, layers=[2])
    np.testing.assert_allclose(state.study.auroc[2], study.auroc[2])
    assert state.cross_task == pytest.approx(np.nanmean(study.cross_task(2)))


def test_the_supports_are_l1_probes_and_their_overlap(trained):
    state = compute_truth(2, 1.0, 0.1, trained=trained)
    acts = last_prompt_activations(trained.model, trained.data)[2].double().numpy()
    y = answer_correct(trained.model, trained.data).numpy()
    t = trained.data.task.numpy()
    for i, kept in enumerate(state.supports):
        if len(np.unique(y[t == i])) == 2:
            np.testing.assert_array_equal(kept, support(acts[t == i], y[t == i], C=0.1))
    a, b = state.supports[0], state.supports[1]
    if len(a) and len(b):
        assert state.jaccard[0, 1] == pytest.approx(
            len(set(a) & set(b)) / len(set(a) | set(b)))
    assert np.isnan(np.diag(state.jaccard)).all()
    # a weaker L1 penalty keeps at least as many neurons on average
    assert compute_truth(2, 1.0, L1_CS[-1], trained=trained).support_size >= \
        compute_truth(2, 1.0, L1_CS[0], trained=trained).support_size


def test_the_explorer_draws_and_moves(trained):
    explorer = TruthExplorer(trained=trained, debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["layer"], meta["C"]) == (2, 1.0)
    z = np.array(explorer.trace("auroc").z, dtype=float)
    assert z.shape == (5, 5)
    explorer.set(C=CS[0])
    assert explorer.figure.layout.meta["C"] == CS[0]
    explorer.set(layer=1)
    assert explorer.figure.layout.meta["layer"] == 1
    explorer.set(l1_C=L1_CS[-1])
    assert explorer.figure.layout.meta["l1_C"] == L1_CS[-1]
    assert np.array(explorer.trace("jaccard").z, dtype=float).shape == (5, 5)
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "name"), [({"layer": 3}, "layer"), ({"C": 0.5}, "C"),
                                              ({"l1_C": 5.0}, "l1_C")])
def test_bad_arguments_raise(trained, kwargs, name):
    with pytest.raises(ValueError, match=name):
        compute_truth(**{"layer": 2, "C": 1.0, **kwargs}, trained=trained)
