"""Nectar: neural estimation of cached-token attention via regression.

Monteiro, Klein, Ablin, Cuturi (2026). For a fixed context, a layer's attention over its cache
is a function of the query, log Z(q) and o(q), that small networks can learn and that merges
exactly with the live tokens' attention, at a cost independent of the context length n.
:mod:`~otkit.nectar.attention` (targets, merge, a model's forward with summarized caches),
:mod:`~otkit.nectar.regression` (the networks), :mod:`~otkit.nectar.compress` (baselines at
equal memory), :mod:`~otkit.nectar.lookup` (the long-context lookup task and its model),
:mod:`~otkit.nectar.study` (notebook 15's experiments).
"""
