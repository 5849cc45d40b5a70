"""Official-style training entry point: ``python scripts/train.py --cfg FILE KEY VALUE ...``.

A thin alias of ``pose-train`` (same flags, including the official ``--dataDir/--modelDir/--logDir``),
so the official README's command lines work unchanged once ``pose`` is installed (``make install`` or
``pip install -e .``). Under torchrun: ``torchrun --nproc_per_node 4 scripts/train.py --cfg FILE``.
"""
import sys

from pose.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
