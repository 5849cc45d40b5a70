"""Property tests (hypothesis) of the numerical core: geometry, codec, flips, OKS-NMS, evaluator.

Seeded and database-free (``derandomize=True``), so CI sees the same examples every run. Set
``POSE_SLOW=1`` for a longer local search (10x the examples)::

    POSE_SLOW=1 .venv/bin/python -m pytest -q tests/test_properties.py
"""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pose import geometry
from pose.codec import DECODERS, HeatmapCodec
from pose.evaluation import CocoKeypointEvaluator, oks_nms, soft_oks_nms
from pose.keypoints import COCO_17, MPII_16
from pose.structures import PoseResult

SLOW = os.environ.get("POSE_SLOW", "") not in ("", "0")


def _settings(examples: int):
    return settings(max_examples=examples * (10 if SLOW else 1), derandomize=True, database=None,
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])


finite = dict(allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
@st.composite
def windows(draw):
    n = draw(st.integers(1, 4))
    centers = np.array([[draw(st.floats(-500, 3000, **finite)), draw(st.floats(-500, 3000, **finite))]
                        for _ in range(n)])
    widths = np.array([draw(st.floats(0.05, 20.0, **finite)) for _ in range(n)])
    scales = np.stack([widths, widths * draw(st.floats(0.5, 2.0, **finite))], axis=1)
    rotations = np.array([draw(st.floats(-180, 180, **finite)) for _ in range(n)])
    size = draw(st.sampled_from([(192, 256), (288, 384), (256, 256), (48, 64), (96, 128)]))
    return centers, scales, rotations, size


@_settings(200)
@given(windows(), st.booleans(), st.integers(0, 2**31 - 1))
def test_crop_matrix_composed_with_its_inverse_is_identity(window, unbiased, seed):
    centers, scales, rotations, size = window
    m = geometry.crop_matrix(centers, scales, rotations, size, unbiased=unbiased)
    inv = geometry.invert_affine(m)
    # As 3x3 matrices: M @ M^-1 = I.
    full = np.concatenate([m, np.broadcast_to([0.0, 0.0, 1.0], (len(m), 1, 3))], axis=1)
    full_inv = np.concatenate([inv, np.broadcast_to([0.0, 0.0, 1.0], (len(m), 1, 3))], axis=1)
    np.testing.assert_allclose(full @ full_inv, np.broadcast_to(np.eye(3), full.shape), atol=1e-9)
    # And on points: crop -> image -> crop, in crop pixels.
    pts = np.random.default_rng(seed).uniform(-50, 400, (len(m), 5, 2))
    back = geometry.apply_affine(geometry.apply_affine(pts, inv), m)
    np.testing.assert_allclose(back, pts, atol=1e-6)


@_settings(100)
@given(windows())
def test_crop_matrix_maps_the_center_to_the_grid_center(window):
    centers, scales, rotations, size = window
    m = geometry.crop_matrix(centers, scales, rotations, size)
    mapped = geometry.apply_affine(centers[:, None, :].astype(np.float32).astype(np.float64), m)[:, 0]
    np.testing.assert_allclose(mapped, np.broadcast_to(np.array(size) / 2.0, mapped.shape), atol=1e-3)


# ------------------------------------------------------------------------------------------------
# Codec round trips (keypoints kept >= 3 sigma inside the map)
# ------------------------------------------------------------------------------------------------
CODEC_SIZES = [((192, 256), (48, 64), 2.0), ((96, 128), (24, 32), 2.0), ((288, 384), (72, 96), 3.0),
               ((256, 256), (64, 64), 2.0)]


@st.composite
def codec_case(draw):
    (iw, ih), (hw, hh), sigma = draw(st.sampled_from(CODEC_SIZES))
    stride = iw / hw
    margin = (3 * sigma + 1) * stride  # >= 3 sigma (+1 px) inside the heatmap, in crop pixels
    n, k = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    xs = draw(st.lists(st.floats(margin, iw - 1 - margin, **finite), min_size=n * k, max_size=n * k))
    ys = draw(st.lists(st.floats(margin, ih - 1 - margin, **finite), min_size=n * k, max_size=n * k))
    kp = np.stack([np.array(xs), np.array(ys)], axis=-1).reshape(n, k, 2)
    return (iw, ih), (hw, hh), sigma, kp


@_settings(150)
@given(codec_case(), st.sampled_from(["none", "quarter", "dark"]))
def test_msra_targets_decode_within_the_quantisation_bound(case, decoder):
    """Official (msra) targets put the peak on an integer heatmap pixel: every decoder is within
    stride / 2 per axis (plus float32 slack) of the true sub-pixel keypoint."""
    input_size, heatmap_size, sigma, kp = case
    codec = HeatmapCodec(input_size, heatmap_size, sigma, decoder=decoder, encoding="msra")
    heatmaps, weights = codec.encode(kp, np.ones(kp.shape[:2]))
    assert np.all(weights == 1)
    decoded, scores = codec.decode(heatmaps)
    stride = input_size[0] / heatmap_size[0]
    assert np.max(np.abs(decoded - kp)) <= stride / 2 + 1e-3
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)


@_settings(150)
@given(codec_case(), st.sampled_from(["dark", "udp"]))
def test_unbiased_targets_decode_within_0_05_px(case, decoder):
    input_size, heatmap_size, sigma, kp = case
    codec = HeatmapCodec(input_size, heatmap_size, sigma, decoder=decoder, encoding="unbiased")
    heatmaps, _ = codec.encode(kp, np.ones(kp.shape[:2]))
    decoded, _ = codec.decode(heatmaps)
    assert np.max(np.abs(decoded - kp)) <= 0.05


@_settings(60)
@given(codec_case(), st.sampled_from(DECODERS))
def test_codec_serialisation_round_trip(case, decoder):
    input_size, heatmap_size, sigma, _ = case
    codec = HeatmapCodec(input_size, heatmap_size, sigma, decoder=decoder)
    assert HeatmapCodec.from_dict(json.loads(json.dumps(codec.to_dict()))) == codec


# ------------------------------------------------------------------------------------------------
# Flips
# ------------------------------------------------------------------------------------------------
@_settings(150)
@given(st.sampled_from([COCO_17, MPII_16]), st.integers(0, 2**31 - 1), st.floats(2, 4000, **finite))
def test_flip_joints_twice_is_identity(spec, seed, width):
    rng = np.random.default_rng(seed)
    k = spec.num_keypoints
    joints = rng.uniform(0, width, (3, k, 3))
    visible = np.ones((3, k))
    once, v1 = geometry.flip_joints_lr(joints, visible, width, spec.flip_pairs)
    twice, v2 = geometry.flip_joints_lr(once, v1, width, spec.flip_pairs)
    np.testing.assert_allclose(twice, joints, atol=1e-9)
    np.testing.assert_array_equal(v2, visible)
    # x mirrored about (width - 1) / 2 and left/right swapped
    perm = geometry.flip_permutation(k, spec.flip_pairs)
    np.testing.assert_allclose(once[..., 0], width - 1 - joints[:, perm, 0], atol=1e-9)


@_settings(100)
@given(st.sampled_from([COCO_17, MPII_16]), st.integers(0, 2**31 - 1), st.integers(2, 40), st.integers(2, 40))
def test_flip_back_twice_is_identity(spec, seed, h, w):
    hm = np.random.default_rng(seed).standard_normal((2, spec.num_keypoints, h, w)).astype(np.float32)
    codec = HeatmapCodec((w * 4, h * 4), (w, h), 2.0)
    np.testing.assert_array_equal(codec.flip_back(codec.flip_back(hm, spec.flip_pairs), spec.flip_pairs), hm)


@_settings(60)
@given(codec_case())
def test_udp_flip_average_of_a_perfect_model_is_exact(case):
    """Encode keypoints and their mirror (x -> W - 1 - x, UDP convention): flip_average returns the
    plain maps, so decoding recovers the keypoints within the round-trip bound."""
    input_size, heatmap_size, sigma, kp = case
    codec = HeatmapCodec(input_size, heatmap_size, sigma, decoder="udp")
    k = kp.shape[1]
    pairs = [(a, b) for a, b in COCO_17.flip_pairs if a < k and b < k]
    vis = np.ones(kp.shape[:2])
    plain, _ = codec.encode(kp, vis)
    mirrored, _ = geometry.flip_joints_lr(kp, vis, input_size[0], pairs)
    flipped_raw, _ = codec.encode(mirrored, vis)
    averaged = codec.flip_average(plain, flipped_raw, pairs)
    np.testing.assert_allclose(averaged, plain, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# OKS-NMS and the evaluator
# ------------------------------------------------------------------------------------------------
@st.composite
def nms_case(draw):
    n = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    centers = rng.uniform(50, 400, (max(1, n // 3), 2))  # clusters, so that suppression happens
    owner = rng.integers(0, len(centers), n)
    kp = centers[owner][:, None, :] + rng.normal(0, draw(st.floats(0.5, 30, **finite)), (n, 17, 2))
    kp = np.concatenate([kp, rng.uniform(0.3, 1, (n, 17, 1))], axis=2)
    scores = rng.permutation(n).astype(np.float64) / n + rng.uniform(0, 1e-3)  # distinct
    areas = rng.uniform(2000, 40000, n)
    thresh = draw(st.floats(0.3, 0.95, **finite))
    return kp, scores, areas, thresh, rng.permutation(n)


@_settings(150)
@given(nms_case(), st.sampled_from([oks_nms, soft_oks_nms]))
def test_oks_nms_is_invariant_to_input_order(case, nms):
    kp, scores, areas, thresh, perm = case
    keep = nms(kp, scores, areas, thresh)
    keep_perm = nms(kp[perm], scores[perm], areas[perm], thresh)
    assert [int(perm[i]) for i in keep_perm] == [int(i) for i in keep]
    assert len(set(keep)) == len(keep) and len(keep) >= 1
    assert list(np.argsort(-scores[keep], kind="stable")) == list(range(len(keep))) or nms is soft_oks_nms


@pytest.fixture(scope="module")
def coco_gt(data_dir):
    return json.loads((data_dir / "coco" / "test_coco.json").read_text())


def _gt_results(gt, jitter, keep, seed):
    rng = np.random.default_rng(seed)
    out = []
    for ann, kept in zip(gt["annotations"], keep):
        kp = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        if not kept or ann.get("iscrowd") or not np.any(kp[:, 2] > 0):
            continue
        x, y, w, h = ann["bbox"]
        center = np.array([x + w / 2, y + h / 2])
        labelled = kp[:, 2] > 0
        xy = np.where(labelled[:, None], kp[:, :2], center) + jitter * rng.standard_normal((len(kp), 2))
        out.append(PoseResult(keypoints_img=np.concatenate([xy, labelled[:, None]], 1).astype(np.float32),
                              center_img=center.astype(np.float32), scale=np.array([w, h], np.float32) / 200,
                              box_score=1.0, image_id=ann["image_id"]))
    return out


@_settings(12)
@given(st.floats(0, 40, **finite), st.lists(st.booleans(), min_size=14, max_size=14), st.integers(0, 1000))
def test_evaluator_recall_counts_the_kept_persons_and_noise_never_helps(coco_gt, jitter, keep, seed):
    """Exact GT keypoints for a subset of the persons: AR is the kept fraction (exactly), AP is 1 when
    every person is kept; noisy keypoints for the same subset never score higher."""
    def metrics(jit):
        ev = CocoKeypointEvaluator(coco_gt)
        ev.process(_gt_results(coco_gt, jit, keep, seed))
        return ev.evaluate()

    scored = [not a.get("iscrowd") and any(v > 0 for v in a["keypoints"][2::3]) for a in coco_gt["annotations"]]
    kept_fraction = sum(k and s for k, s in zip(keep, scored)) / sum(scored)
    exact = metrics(0.0)
    assert exact["AR"] == pytest.approx(kept_fraction, abs=1e-9), (exact, kept_fraction)
    if kept_fraction == 1.0:
        assert exact["AP"] == pytest.approx(1.0, abs=1e-9) and exact["AP .5"] == pytest.approx(1.0, abs=1e-9)
    if jitter:
        noisy = metrics(jitter)
        for name in ("AP", "AP .5", "AP .75", "AR"):
            assert noisy[name] <= exact[name] + 1e-9, (name, noisy[name], exact[name])
