"""Speed and memory benchmarks of ``pose`` (``python -m benchmarks``); see :mod:`benchmarks.harness`."""
