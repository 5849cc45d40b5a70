"""Configuration: the yacs schema (official HRNet keys), merging and validation. No global config.

Usage::

    cfg = load_config("configs/coco_hrnet_w32_256x192.yaml", ["TRAIN.LR", "0.0005"])   # frozen
    cfg = get_default_config()                                                        # fresh, mutable
    cfg2 = with_overrides(cfg, ["TEST.FLIP_TEST", "False"])                           # new frozen copy

- :mod:`pose.config.defaults`: every key with its official default and a comment;
- :mod:`pose.config.merge`: YAML files and ``KEY VALUE`` overrides, yacs semantics, one-line errors;
- :mod:`pose.config.validate`: cross-field rules.

Entry points hold the whole tree and hand components their own sub-node or plain values. Derived
values are computed by pure helpers (:func:`resolve_data_path` here, dataset folders in
:mod:`pose.data.layout`, the decoder in :func:`pose.codec.default_decoder`), never written back into
the config (the official ``update_config`` joined ``DATA_DIR`` onto three keys in place).
"""
import os
from pathlib import Path

from yacs.config import CfgNode

from pose.codec import default_decoder
from pose.config.defaults import AMP_DTYPES, HALF_BODY_DRAWS, LR_SCHEDULE_STEPS, OPTIMIZERS, get_default_config
from pose.config.merge import config_from_yaml_text, config_to_yaml, load_config, with_overrides
from pose.config.validate import keypoint_spec_for_config, validate_config

__all__ = ["AMP_DTYPES", "HALF_BODY_DRAWS", "LR_SCHEDULE_STEPS", "OPTIMIZERS",
           "config_from_yaml_text", "config_to_yaml", "decoder_name", "get_default_config", "keypoint_spec_for_config",
           "load_config",
           "run_folder", "resolve_data_path", "validate_config", "with_overrides"]


def decoder_name(cfg: CfgNode) -> str:
    """The heatmap decoder a config selects (``TEST.DECODER``, or derived from ``TEST.POST_PROCESS``)."""
    return default_decoder(cfg.TEST.DECODER, cfg.TEST.POST_PROCESS)


def resolve_data_path(cfg: CfgNode, path: str) -> str:
    """``path`` joined onto ``cfg.DATA_DIR`` when relative ('' stays '', absolute paths are unchanged)."""
    if not path:
        return ""
    return os.path.join(cfg.DATA_DIR, path) if cfg.DATA_DIR else path


def run_folder(cfg: CfgNode, cfg_path) -> Path:
    """The official output folder of a run: ``OUTPUT_DIR/<DATASET.DATASET>/<MODEL.NAME>/<config file stem>``
    (``OUTPUT_DIR`` '' = ``output``), where the official ``train.py`` and ``test.py`` write."""
    root = Path(cfg.OUTPUT_DIR or "output")
    return root / str(cfg.DATASET.DATASET) / str(cfg.MODEL.NAME) / Path(cfg_path).stem
