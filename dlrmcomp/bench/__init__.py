"""Benchmarks: payload generators, codec sweeps, timers, external tools, the speed-up model."""
