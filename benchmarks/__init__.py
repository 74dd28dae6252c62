"""Throughput benchmarks (``python -m benchmarks.<name> --preset tiny|pretrain_flant5xl``); see
``common.py`` for the JSON line each prints."""
