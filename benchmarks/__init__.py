"""Benchmarks of otkit against its peers (POT, GeomLoss, KeOps, OTT-JAX). Not part of the package."""
