"""Official-style evaluation entry point: ``python scripts/test.py --cfg FILE KEY VALUE ...``.

Same as ``pose-eval`` (it is a thin alias), so ``TEST.MODEL_FILE`` / ``TEST.USE_GT_BBOX`` overrides from
the official README work unchanged.
"""
import sys

from pose.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
