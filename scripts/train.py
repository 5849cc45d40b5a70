"""Official-style training entry point: ``python scripts/train.py --cfg FILE KEY VALUE ...``.

A thin alias of ``pose-train`` (same flags, including the official ``--dataDir/--modelDir/--logDir``),
so the official README's command lines work unchanged. Under torchrun:
``torchrun --nproc_per_node 4 scripts/train.py --cfg FILE``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from pose.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
