"""Demo entry point: ``python demo/demo.py INPUT [options]``.

Same as ``pose-demo`` (a thin alias; see ``pose-demo --help``), for running from a source checkout.
"""
import sys

from pose.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
