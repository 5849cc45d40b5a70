"""Keypoint sets as data: the shipped declarations, the checks on a declaration (one-line errors naming the file
and key), COCO_17 / MPII_16 read from the same files, and the config / checkpoint plumbing."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pose.config import get_default_config, keypoint_spec_for_config, load_config, with_overrides
from pose.errors import ConfigError
from pose.keypoints import (
    COCO_17,
    KEYPOINT_SETS_DIR,
    MPII_16,
    KeypointSpec,
    load_keypoint_set,
    shipped_keypoint_sets,
    spec_from_declaration,
)

REPO = Path(__file__).resolve().parents[1]
HAND5 = REPO / "tests" / "data" / "keypoints" / "hand5.yaml"
SHIPPED = {"coco": 17, "mpii": 16, "crowdpose": 14, "ochuman": 17, "aic": 14, "coco_wholebody": 133, "ap10k": 17,
           "onehand10k": 21, "300w": 68, "wflw": 98, "cofw": 29}


def test_every_listed_set_is_shipped_with_its_size():
    assert set(shipped_keypoint_sets()) == set(SHIPPED)
    for name, k in SHIPPED.items():
        spec = load_keypoint_set(name)
        assert spec.num_keypoints == k and spec.name == name
        perm = spec.flip_permutation()
        assert np.array_equal(perm[perm], np.arange(k))        # an involution of length K
        if spec.protocol in ("coco", "crowdpose", "coco_wholebody"):
            assert len(spec.oks_sigmas) == k


def test_coco_and_mpii_facts_come_from_the_declarations():
    assert COCO_17 == load_keypoint_set(KEYPOINT_SETS_DIR / "coco.yaml")
    assert COCO_17.oks_sigmas[:3] == (0.026, 0.025, 0.025) and COCO_17.flip_pairs[0] == (1, 2)
    assert MPII_16.protocol == "mpii" and MPII_16.flip_pairs[0] == (0, 5)
    # no second copy of the COCO facts in the code
    code = "".join(p.read_text() for p in (REPO / "pose").rglob("*.py"))
    assert ".079, .079, .072" not in code and "0.079, 0.079, 0.072" not in code


def test_research_note_values():
    wb = load_keypoint_set("coco_wholebody")
    assert dict((n, (a, b)) for n, a, b in wb.parts) == {"body": (0, 17), "foot": (17, 23), "face": (23, 91),
                                                         "left_hand": (91, 112), "right_hand": (112, 133)}
    assert len(wb.flip_pairs) == 61 and len(wb.skeleton) == 65 and wb.oks_sigmas[:17] == COCO_17.oks_sigmas
    assert load_keypoint_set("crowdpose").oks_area == "bbox" and load_keypoint_set("aic").oks_area == "bbox"
    assert load_keypoint_set("300w").nme_pair == (36, 45) and load_keypoint_set("wflw").nme_pair == (60, 72)
    assert load_keypoint_set("cofw").nme_pair == (8, 9) and load_keypoint_set("onehand10k").flip_pairs == ()
    ap = load_keypoint_set("ap10k")
    # joint weights follow AP-10K's own order (mmpose copied COCO's list, which lands on the wrong joints)
    assert [ap.keypoint_names[i] for i, w in enumerate(ap.joint_weights) if w == 1.5] == [
        "left_front_paw", "right_front_paw", "left_back_paw", "right_back_paw"]


def test_to_dict_round_trip_keeps_every_field():
    for name in SHIPPED:
        spec = load_keypoint_set(name)
        assert KeypointSpec.from_dict(spec.to_dict()) == spec


BASE = {"name": "toy", "keypoints": ["nose", "left_eye", "right_eye"], "flip_pairs": [["left_eye", "right_eye"]],
        "skeleton": [["nose", "left_eye"]], "sigmas": [0.02, 0.02, 0.02]}


@pytest.mark.parametrize("change, key, words", [
    ({"flip_pairs": [["left_eye", "right_ear"]]}, "flip_pairs[0]", "'right_ear' is not a name in 'keypoints'"),
    ({"flip_pairs": [["left_eye", "left_eye"]]}, "flip_pairs[0]", "paired with itself"),
    ({"flip_pairs": [["left_eye", "right_eye"], ["nose", "left_eye"]]}, "flip_pairs[1]", "already in flip_pairs[0]"),
    ({"flip_pairs": [0, 1]}, "flip_pairs[0]", "expected a list of 2 keypoint names"),
    ({"sigmas": [0.02, 0.02]}, "sigmas", "has 2 values; expected 3"),
    ({"sigmas": [0.02, 0.0, 0.02]}, "sigmas", "positive"),
    ({"sigmas": None}, "sigmas", "missing for protocol 'coco'"),
    ({"keypoints": ["nose", "left_eye", "nose"]}, "keypoints", "duplicate name 'nose'"),
    ({"keypoints": []}, "keypoints", "non-empty list"),
    ({"skeleton": [["nose", "chin"]]}, "skeleton[0]", "'chin' is not a name"),
    ({"joint_weights": [1, 1]}, "joint_weights", "has 2 values; expected 3"),
    ({"upper_body": ["neck"]}, "upper_body", "'neck' is not a name"),
    ({"protocol": "map"}, "protocol", "expected one of"),
    ({"protocol": "nme", "sigmas": None}, "nme_pair", "missing for protocol 'nme'"),
    ({"oks_area": "segm"}, "oks_area", "expected one of"),
    ({"parts": {"face": [0, 4]}}, "parts.face", "0 <= start < end <= 3"),
    ({"flip_idx": [0, 2, 1]}, "flip_idx", "unknown key"),
])
def test_bad_declaration_gives_one_line_error_naming_file_and_key(tmp_path, change, key, words):
    data = dict(BASE, **change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as e:
        load_keypoint_set(path)
    message = str(e.value)
    assert message.startswith(f"keypoint declaration '{path}': {key}: "), message
    assert words in message and "\n" not in message


def test_todo_sigmas_load_and_are_flagged():
    spec = spec_from_declaration(dict(BASE, sigmas="TODO"))
    assert spec.sigmas_todo and spec.oks_sigmas == ()


def test_unknown_set_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"keypoint set 'coco18' is unknown; expected one of \["):
        load_keypoint_set("coco18")
    with pytest.raises(ConfigError, match=r"keypoint declaration '.*nope.yaml': no such file"):
        load_keypoint_set(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("keypoints: [a, b\n")
    with pytest.raises(ConfigError, match=r"broken.yaml': not valid YAML"):
        load_keypoint_set(bad)


# ------------------------------------------------------------------------------------------------
# Config plumbing
# ------------------------------------------------------------------------------------------------
def _cfg(*pairs):
    return with_overrides(get_default_config(), ["MODEL.ARCH", "hrnet_w32"] + list(pairs))


def test_dataset_keypoints_resolves_names_and_paths():
    assert keypoint_spec_for_config(_cfg("DATASET.DATASET", "crowdpose", "MODEL.NUM_JOINTS", "14")).name == "crowdpose"
    cfg = _cfg("DATASET.DATASET", "coco_format", "DATASET.KEYPOINTS", str(HAND5), "MODEL.NUM_JOINTS", "5")
    assert keypoint_spec_for_config(cfg).keypoint_names[-1] == "pinky_finger4"
    ochuman_as_coco = _cfg("DATASET.DATASET", "ochuman", "DATASET.KEYPOINTS", "coco", "MODEL.NUM_JOINTS", "17")
    assert keypoint_spec_for_config(ochuman_as_coco) == COCO_17


@pytest.mark.parametrize("pairs, words", [
    (("DATASET.DATASET", "crowdpose", "MODEL.NUM_JOINTS", "17"),
     "MODEL.NUM_JOINTS: got 17 for DATASET.DATASET 'crowdpose'; expected 14"),
    (("DATASET.DATASET", "coco_format", "MODEL.NUM_JOINTS", "5"), "DATASET.KEYPOINTS: empty with DATASET.DATASET"),
    (("DATASET.DATASET", "mydata"), "DATASET.DATASET: unknown dataset 'mydata'"),
    (("DATASET.DATASET", "coco_format", "DATASET.KEYPOINTS", str(HAND5), "MODEL.NUM_JOINTS", "17"),
     "expected 5 (the 'hand5' keypoint set has 5 keypoints)"),
    (("DATASET.DATASET", "coco", "DATASET.OKS_SIGMA_FALLBACK", "-1"), "DATASET.OKS_SIGMA_FALLBACK: got -1"),
])
def test_config_checks_the_keypoint_set(pairs, words):
    with pytest.raises(ConfigError) as e:
        _cfg(*pairs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_oks_evaluation_refuses_todo_sigmas_without_explicit_fallback(tmp_path, caplog):
    from pose.evaluation.runner import evaluation_sigmas

    path = tmp_path / "todo.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, sigmas="TODO")))
    cfg = _cfg("DATASET.DATASET", "coco_format", "DATASET.KEYPOINTS", str(path), "MODEL.NUM_JOINTS", "3")
    spec = keypoint_spec_for_config(cfg)
    with pytest.raises(ConfigError, match=r"keypoint set 'toy': sigmas are TODO; .*DATASET.OKS_SIGMA_FALLBACK"):
        evaluation_sigmas(cfg, spec)
    with caplog.at_level("WARNING"):
        assert evaluation_sigmas(with_overrides(cfg, ["DATASET.OKS_SIGMA_FALLBACK", "0.05"]), spec) == (0.05,) * 3
    assert "not comparable" in caplog.text
    assert evaluation_sigmas(cfg, load_keypoint_set("onehand10k")) is None   # PCK: no sigmas needed


def test_shipped_model_configs_load_with_their_sets():
    for name, k in (("crowdpose_hrnet_w32_256x192", 14), ("coco_wholebody_hrnet_w32_256x192", 133),
                    ("ap10k_hrnet_w32_256x256", 17), ("onehand10k_hrnet_w32_256x256", 21)):
        path = REPO / "configs" / f"{name}.yaml"
        cfg = load_config(path)
        assert cfg.MODEL.NUM_JOINTS == k == keypoint_spec_for_config(cfg).num_keypoints
        assert "HRNet" in path.read_text().split("\n")[0] and "published" in path.read_text().lower()


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_pose_keypoints_check_bad_file_is_one_line_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, flip_pairs=[["left_eye", "right_ear"]])))
    proc = subprocess.run([sys.executable, "-m", "pose.cli.keypoints", "check", str(path)], cwd=REPO,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"pose-keypoints: error: keypoint declaration '{path}': flip_pairs[0]: 'right_ear' is not a name in "
        "'keypoints'; expected one of the 3 declared names"]


def test_pose_keypoints_init_guesses_flip_pairs_and_marks_sigmas_todo(tmp_path):
    from pose.cli.keypoints import main

    out = tmp_path / "aic.yaml"
    assert main(["init", str(REPO / "tests" / "data" / "aic" / "test_aic.json"), "-o", str(out), "--quiet"]) == 0
    spec = load_keypoint_set(out)
    assert spec.sigmas_todo and spec.num_keypoints == 14 and spec.name == "aic"
    assert spec.flip_pairs == load_keypoint_set("aic").flip_pairs          # "Right Shoulder" <-> "Left Shoulder"
    assert len(spec.skeleton) == 14
    assert main(["init", str(REPO / "tests" / "data" / "aic" / "test_aic.json"), "-o", str(out), "--quiet"]) == 1


def test_checkpoint_refuses_a_config_of_another_set(tmp_path):
    import torch

    from pose.checkpoint import save_checkpoint
    from pose.codec import build_codec
    from pose.loading import build_from_checkpoint
    from pose.models import build_model

    torch.manual_seed(0)
    cfg = load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml",
                      ["DATASET.DATASET", "coco_format", "DATASET.KEYPOINTS", str(HAND5), "MODEL.NUM_JOINTS", "5"])
    path = tmp_path / "hand5.pth"
    save_checkpoint(path, model=build_model(cfg.MODEL), cfg=cfg, codec=build_codec(cfg),
                    spec=keypoint_spec_for_config(cfg))
    _, _, _, spec = build_from_checkpoint(path, cfg=cfg)          # the same set: accepted
    assert spec.name == "hand5"
    other = tmp_path / "other5.yaml"
    other.write_text(yaml.safe_dump({"name": "other5", "keypoints": ["a", "b", "c", "d", "e"], "sigmas": [0.03] * 5}))
    with pytest.raises(ConfigError) as e:
        build_from_checkpoint(path, cfg=with_overrides(cfg, ["DATASET.KEYPOINTS", str(other)]))
    assert "config keypoint set 'other5' (5 keypoints) differs in its keypoint names from checkpoint" in str(e.value)
    with pytest.raises(ConfigError, match="DATASET.DATASET"):          # another named set: a bound value
        build_from_checkpoint(path, cfg=load_config(REPO / "configs" / "tiny_hrnet_128x96.yaml",
                                                    ["DATASET.DATASET", "crowdpose", "MODEL.NUM_JOINTS", "5",
                                                     "DATASET.KEYPOINTS", str(HAND5)]))
