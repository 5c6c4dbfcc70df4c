"""Benchmarks and the sample requests they (and the hardening tests) send."""
