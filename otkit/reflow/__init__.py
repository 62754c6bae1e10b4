"""Simple ReFlow: retraining a flow on its teacher's pairs, and the improvements of Kim et al.

Kim, Hsieh, Klein, Cuturi, Ye, Kawar and Thornton (2025), "Simple ReFlow: improved techniques
for fast flow models" (ICLR 2025). ReFlow (Liu, Gong and Liu 2023) fits a student flow on pairs
(z, T(z)) simulated by a teacher's ODE T; the paths of the student are straighter, so few
function evaluations (NFE) suffice. The paper's improvements that this package toggles:

* loss normalization w = 1/sg[loss] (:mod:`otkit.flows.weighting`, generic);
* a time distribution increasing towards the noise, ∝ 10^(1 − t) in otkit's time
  (:mod:`otkit.flows.time_samplers`, generic);
* forward pairs, real data inverted by the teacher (:mod:`~otkit.reflow.pairs`);
* the high-pass-filter distance for images (:mod:`otkit.flows.hpf`, generic);
* class-conditional velocities with classifier-free guidance (:mod:`otkit.flows.guidance`,
  generic).

Left out: dropout, projected pairs and the improved sampler. :mod:`~otkit.reflow.study` runs the
ablation on 8 Gaussians → moons and compares ReFlow with Sinkhorn OT-FM and SD-FM at equal SGD
budget; :mod:`~otkit.reflow.digits` runs class-conditional ReFlow on 8×8 digits (Fréchet
distance on a digits classifier's features, class accuracy, guidance).
"""

from .pairs import (
    TeacherPairs,
    backward_pairs,
    forward_pairs,
    reverse_velocity,
    teacher_pairs,
)

__all__ = ["TeacherPairs", "backward_pairs", "forward_pairs", "reverse_velocity", "teacher_pairs"]
