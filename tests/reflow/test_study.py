"""The ReFlow study of notebook 11 on small budgets, and the reading of its rows."""

from __future__ import annotations

import pytest
import torch

from otkit.flows.study import flow_benchmark
from otkit.reflow.study import (
    ABLATION,
    LADDER,
    ReflowConfig,
    make_pairs,
    read_study,
    reflow_study,
    train_student,
    train_teacher,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_config_labels_round_trip():
    for label in ABLATION + LADDER + ("+time+forward",):
        assert ReflowConfig.from_label(label).label == label
    assert ReflowConfig(True, True, True).label == "all"
    for bad in ("+dropout", "normalization", "", "+"):
        with pytest.raises(ValueError, match="configs"):
            ReflowConfig.from_label(bad)


def test_reflow_straightens_its_teachers_paths():
    """Liu et al. (2023): the student's paths are straighter than the teacher's (straightness
    0 = straight lines), and one Euler step of the student beats one of the teacher."""
    bench = flow_benchmark("moons", reference_size=500)
    torch.manual_seed(0)
    teacher = train_teacher(bench, steps=300, batch_size=128, seed=0)
    pairs = make_pairs(teacher, bench, num_pairs=1024, pair_nfe=16)
    student = train_student(teacher, pairs, ReflowConfig(), steps=200, batch_size=128)
    x0 = bench.source(500, torch.Generator().manual_seed(5))
    from otkit.flows import path_straightness, wasserstein2

    s_teacher = path_straightness(teacher.sample(x0, nfe=16, return_path=True)[1])
    s_student = path_straightness(student.sample(x0, nfe=16, return_path=True)[1])
    assert s_student < 0.2 * s_teacher, (s_student, s_teacher)
    w_teacher = wasserstein2(teacher.sample(x0, nfe=1), bench.reference)
    w_student = wasserstein2(student.sample(x0, nfe=1), bench.reference)
    assert w_student < 0.7 * w_teacher, (w_student, w_teacher)


def test_student_starts_from_the_teacher_and_checks_its_pairs():
    bench = flow_benchmark("moons", reference_size=100)
    teacher = train_teacher(bench, steps=5, batch_size=32)
    backward = make_pairs(teacher, bench, num_pairs=64, pair_nfe=2)
    mixed = make_pairs(teacher, bench, num_pairs=64, pair_nfe=2, forward_fraction=0.5)
    assert int(mixed.forward.sum()) == 32 and not backward.forward.any()
    with pytest.raises(ValueError, match="forward"):
        train_student(teacher, backward, ReflowConfig(forward=True), steps=1, batch_size=32)
    with pytest.raises(TypeError, match="config"):
        train_student(teacher, backward, "baseline", steps=1, batch_size=32)
    # a tiny learning rate: the student is (nearly) its teacher
    student = train_student(teacher, backward, ReflowConfig(), steps=1, batch_size=32, lr=1e-12)
    for p, q in zip(student.model.parameters(), teacher.ema_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-9, rtol=0)
    assert student.model is not teacher.ema_model


def test_study_rows_and_equal_budget():
    rows = reflow_study(seeds=(0, 1), configs=("baseline", "+forward"), baselines=("independent",),
                        nfes=(1, 2), teacher_steps=20, student_steps=10, batch_size=32,
                        num_pairs=64, pair_nfe=4, num_samples=100)
    methods = {r["method"] for r in rows}
    assert methods == {"teacher", "baseline", "+forward", "I-FM"}
    assert len(rows) == 4 * 2 * 2
    budget = {r["method"]: r["sgd_steps"] for r in rows}
    assert budget == {"teacher": 20, "baseline": 30, "+forward": 30, "I-FM": 30}
    assert {r["teacher_evaluations"] for r in rows if r["method"] in ("baseline", "+forward")} == {64 * 4}
    assert all(r["w2"] > 0 and r["straightness"] >= 0 for r in rows)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"seeds": ()}, ValueError, "seeds"), ({"configs": ("+hpf",)}, ValueError, "configs"),
    ({"baselines": ("rectified",)}, ValueError, "baselines"), ({"nfes": (0,)}, ValueError, "nfes"),
    ({"forward_fraction": 2.0}, ValueError, "forward_fraction"),
    ({"teacher_steps": 0}, ValueError, "teacher_steps"),
])
def test_study_rejects_bad_input(kwargs, error, name):
    with pytest.raises(error, match=name):
        reflow_study(**kwargs)


def _rows(table: dict[str, dict[int, list[float]]]) -> list[dict]:
    return [{"method": m, "seed": s, "nfe": nfe, "w2": w}
            for m, by_nfe in table.items() for nfe, ws in by_nfe.items() for s, w in enumerate(ws)]


def test_reading_states_reproduced_and_failed_claims():
    rows = _rows({
        "teacher": {1: [0.8, 0.7, 0.9], 16: [0.15, 0.16, 0.14]},
        "baseline": {1: [0.2, 0.21, 0.19], 16: [0.18, 0.19, 0.18]},
        "+forward": {1: [0.2, 0.22, 0.19], 16: [0.18, 0.2, 0.17]},   # a tie with baseline
        "+time": {1: [0.3, 0.31, 0.29], 16: [0.18, 0.19, 0.18]},     # worse at NFE 1
        "all": {1: [0.18, 0.2, 0.17], 16: [0.18, 0.19, 0.18]},
    })
    reading = read_study(rows)
    assert reading.beats_teacher == {1: "lower", 16: "higher"}
    text = "\n".join(reading.lines)
    assert "beats the teacher at NFE ≤ 4': reproduced" in text and "and loses at large NFE' (NFE 16): reproduced" in text
    assert not reading.monotone and "baseline → +time at NFE 1" in text
    assert reading.forward_helps == {1: "tie", 16: "tie"}
    assert "'forward pairs help' (+forward vs baseline): not reproduced" in text
    with pytest.raises(ValueError, match="teacher"):
        read_study([r for r in rows if r["method"] != "teacher"])
