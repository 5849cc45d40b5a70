"""Console entry points (``pose-train``, ``pose-eval``, ``pose-demo``, ``pose-export``, ``pose-plot``).

Each is a thin shell: parse arguments, load the config, call one library function. Errors are
reported by :func:`pose.cli.common.run_cli`.
"""
