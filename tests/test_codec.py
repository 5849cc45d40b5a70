"""pose.codec: targets and decoders against the official HRNet / DarkPose golden data, plus identities."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from pose import geometry as g
from pose.codec import (
    HeatmapCodec,
    argmax_heatmaps,
    build_codec,
    dark_modulate,
    flip_back,
    refine_dark,
    refine_quarter,
    unbiased_targets,
)
from pose.errors import ConfigError
from pose.keypoints import COCO_17, MPII_16

ATOL_TGT = 1e-5      # reference README: targets and transforms
ATOL_PX = 1e-3       # reference README: decoder coordinates


def codec_256(decoder="quarter", **kw):
    return HeatmapCodec((192, 256), (48, 64), 2, decoder=decoder, **kw)


@pytest.fixture(scope="module")
def tf(golden):
    return golden("golden_transforms_seed0.npz")


@pytest.fixture(scope="module")
def dec(golden):
    return golden("golden_decode_seed0.npz")


@pytest.fixture(scope="module")
def w32(golden):
    return golden("golden_w32_seed0.npz")


# -- targets ---------------------------------------------------------------------------------
def test_msra_targets_sigma2_match_official(tf):
    heatmaps, weights = codec_256().encode(tf["tgt_joints"][..., :2], tf["tgt_vis"][..., 0])
    assert heatmaps.shape == (6, 17, 64, 48) and heatmaps.dtype == np.float32
    assert weights.shape == (6, 17) and weights.dtype == np.float32
    np.testing.assert_allclose(heatmaps, tf["tgt_target_s2"], atol=ATOL_TGT, rtol=0)
    np.testing.assert_array_equal(weights, tf["tgt_weight_s2"][..., 0])


def test_msra_targets_sigma3_384_match_official(tf):
    codec = HeatmapCodec((288, 384), (72, 96), 3)
    heatmaps, weights = codec.encode(tf["tgt_joints"][..., :2] * 1.5, tf["tgt_vis"][..., 0])
    np.testing.assert_allclose(heatmaps, tf["tgt_target_s3_384"], atol=ATOL_TGT, rtol=0)
    np.testing.assert_array_equal(weights, tf["tgt_weight_s3_384"][..., 0])


def test_joint_weights_match_official(tf):
    _, weights = codec_256().encode(tf["tgt_joints"][..., :2], tf["tgt_vis"][..., 0], COCO_17.joint_weights)
    np.testing.assert_allclose(weights, tf["tgt_weight_s2_jw"][..., 0], atol=ATOL_TGT)
    with pytest.raises(ValueError, match="joint_weights"):
        codec_256().encode(tf["tgt_joints"][..., :2], tf["tgt_vis"][..., 0], MPII_16.joint_weights)


def test_unbiased_targets_match_darkpose(tf):
    joints_hm = tf["dark_tgt_joints_hm"][..., :2]
    heatmaps, weights = unbiased_targets(joints_hm, tf["tgt_vis"][..., 0], (48, 64), 2)
    np.testing.assert_allclose(heatmaps, tf["dark_tgt_target_s2"], atol=ATOL_TGT, rtol=0)
    np.testing.assert_array_equal(weights, tf["dark_tgt_weight_s2"][..., 0])


def test_invisible_and_off_map_joints_get_weight_zero_and_empty_maps():
    kp = np.array([[[100.0, 100.0], [100.0, 100.0], [-40.0, 100.0], [230.0, 100.0], [-13.0, 100.0]]])
    vis = np.array([[1, 0, 1, 1, 1]])
    for codec in (codec_256(), codec_256("udp")):
        heatmaps, weights = codec.encode(kp, vis)
        np.testing.assert_array_equal(weights[0, :4], [1, 0, 0, 0])
        assert heatmaps[0, 1:4].max() == 0
    # Python int() truncates toward zero: x = -13 -> mu = int(-2.75) = -2, the window still reaches
    # the map, so the joint keeps weight 1 and its map is partly drawn (official behaviour).
    heatmaps, weights = codec_256().encode(kp, vis)
    assert weights[0, 4] == 1 and heatmaps[0, 4].max() > 0


def test_msra_peak_sits_on_the_rounded_pixel():
    heatmaps, _ = codec_256().encode(np.array([[[41.0, 77.9]]]), np.ones((1, 1)))
    y, x = np.unravel_index(heatmaps[0, 0].argmax(), (64, 48))
    assert (x, y) == (10, 19) and heatmaps[0, 0, y, x] == 1.0


# -- decoding in heatmap space -------------------------------------------------------------------------
def test_argmax_matches_official_get_max_preds(dec):
    coords, maxvals = argmax_heatmaps(dec["heatmaps"])
    np.testing.assert_array_equal(coords, dec["argmax_coords"])
    np.testing.assert_array_equal(maxvals, dec["maxvals"][..., 0])


def test_quarter_refinement_in_heatmap_space(dec):
    coords, maxvals = codec_256().decode_heatmap_space(dec["heatmaps"])
    np.testing.assert_allclose(coords, dec["coords_hm_pp"], atol=ATOL_PX, rtol=0)
    np.testing.assert_array_equal(refine_quarter(dec["heatmaps"], dec["argmax_coords"]), coords)
    np.testing.assert_array_equal(maxvals, dec["maxvals_pp"][..., 0])


def test_dark_modulation_matches_darkpose(dec):
    blurred = dark_modulate(dec["heatmaps"], 11)
    ref = dec["dark_blurred"]
    finite = np.isfinite(ref)
    assert (~finite).sum() == 64 * 48 and not finite[7, 0].any()     # DarkPose's 0/0 on the all-zero map
    np.testing.assert_allclose(blurred[finite], ref[finite], atol=1e-5, rtol=1e-5)
    assert np.all(blurred[7, 0] == 0)                                # ours: defined, stays zero


def test_dark_coordinates_in_heatmap_space(dec):
    assert bool(dec["dark_ok"])
    coords, maxvals = codec_256("dark").decode_heatmap_space(dec["heatmaps"])
    np.testing.assert_allclose(coords, dec["dark_coords_hm"], atol=ATOL_PX, rtol=0)
    np.testing.assert_array_equal(maxvals, dec["dark_maxvals"][..., 0])


# -- decoding to image space -----------------------------------------------------------------------
def _to_image(codec, heatmaps, center, scale):
    kp, scores = codec.decode(heatmaps)
    assert kp.shape == heatmaps.shape[:2] + (2,) and scores.shape == heatmaps.shape[:2]
    return g.crop_to_image(kp, center, scale, codec.input_size, unbiased=codec.unbiased), scores


@pytest.mark.parametrize("decoder,key,score_key", [
    ("quarter", "preds_pp", "maxvals_pp"), ("none", "preds_nopp", "maxvals"),
    ("dark", "dark_preds_hrnet_transform", "dark_maxvals"),
    ("udp", "dark_preds_darkpose_transform", "dark_maxvals")])
def test_image_space_predictions_match_reference(dec, decoder, key, score_key):
    preds, scores = _to_image(codec_256(decoder), dec["heatmaps"], dec["center"], dec["scale"])
    np.testing.assert_allclose(preds, dec[key], atol=ATOL_PX, rtol=0)
    np.testing.assert_array_equal(scores, dec[score_key][..., 0])


def test_darkpose_transform_on_heatmap_coordinates(dec):
    preds = g.crop_to_image(dec["dark_coords_hm"], dec["center"], dec["scale"], (48, 64), unbiased=True)
    np.testing.assert_allclose(preds, dec["dark_preds_darkpose_transform"], atol=ATOL_PX, rtol=0)
    inv = g.invert_affine(g.crop_matrix(dec["center"], dec["scale"], 0, (48, 64)))
    np.testing.assert_allclose(inv, dec["inv_affine"], atol=ATOL_TGT, rtol=0)


# -- edge cases --------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["none", "quarter", "dark", "udp"])
def test_degenerate_maps_are_defined(decoder):
    hm = np.zeros((1, 5, 64, 48), np.float32)
    hm[0, 1] = -1.0                                     # all negative
    hm[0, 2, 10, 20] = hm[0, 2, 30, 5] = 0.7            # exact tie -> first in row-major order
    hm[0, 3, 0, 47] = 0.9                               # corner peak: no refinement possible
    hm[0, 4, 63, 0] = 0.4
    codec = codec_256(decoder)
    coords, scores = codec.decode_heatmap_space(hm)
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords[0, 0], [0, 0])
    np.testing.assert_array_equal(coords[0, 1], [0, 0])
    np.testing.assert_array_equal(scores[0, :2], [0, -1])
    np.testing.assert_array_equal(coords[0, 2], [20, 10])
    np.testing.assert_array_equal(coords[0, 3], [47, 0])
    np.testing.assert_array_equal(coords[0, 4], [0, 63])


def test_golden_edge_case_person(dec):
    """Person 7 of the decode golden: zeros, negatives, tie, border peaks; all decoders finite."""
    hm = dec["heatmaps"][7:8]
    for decoder in ("none", "quarter", "dark", "udp"):
        kp, scores = codec_256(decoder).decode(hm)
        assert np.isfinite(kp).all() and np.isfinite(scores).all()
    coords, _ = codec_256("dark").decode_heatmap_space(hm)
    np.testing.assert_array_equal(coords[0, :2], [[0, 0], [0, 0]])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_heatmaps_raise_a_clear_error(bad):
    hm = np.zeros((2, 3, 8, 8), np.float32)
    hm[1, 2, 4, 4] = bad
    with pytest.raises(ValueError, match=r"NaN or \+inf .*person 1, joint 2"):
        codec_256("dark").decode(hm)


def test_wrong_shapes_raise_value_error():
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        codec_256().decode(np.zeros((17, 64, 48), np.float32))
    with pytest.raises(ValueError, match="visible"):
        codec_256().encode(np.zeros((2, 17, 2)), np.zeros((2, 16)))


def test_empty_batch():
    codec = codec_256("dark")
    heatmaps, weights = codec.encode(np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert heatmaps.shape == (0, 17, 64, 48) and weights.shape == (0, 17)
    kp, scores = codec.decode(heatmaps)
    assert kp.shape == (0, 17, 2) and scores.shape == (0, 17)


def test_decoding_does_not_modify_its_input(dec):
    hm = dec["heatmaps"].copy()
    for decoder in ("quarter", "dark", "udp"):
        codec_256(decoder).decode(hm)
    np.testing.assert_array_equal(hm, dec["heatmaps"])


# -- round trips ---------------------------------------------------------------------------------
def _interior_keypoints(rng, n=64, margin=24):
    return rng.uniform([margin, margin], [192 - margin, 256 - margin], size=(n, 17, 2))


@pytest.mark.parametrize("decoder", ["dark", "udp"])
def test_subpixel_round_trip_with_unbiased_targets(rng, decoder):
    """DARK recovers sub-pixel keypoints from sub-pixel (unbiased) targets."""
    codec = codec_256(decoder, encoding="unbiased")
    kp = _interior_keypoints(rng)
    heatmaps, weights = codec.encode(kp, np.ones(kp.shape[:2]))
    assert weights.min() == 1
    decoded, scores = codec.decode(heatmaps)
    assert np.abs(decoded - kp).max() < 0.05
    assert scores.min() > 0.9


@pytest.mark.parametrize("decoder", ["none", "quarter", "dark"])
def test_msra_round_trip_is_quantised_to_the_stride(rng, decoder):
    """Official integer targets: the decode returns round(x / 4) * 4, at most stride/2 = 2 px away."""
    codec = codec_256(decoder)
    kp = _interior_keypoints(rng)
    decoded, scores = codec.decode(codec.encode(kp, np.ones(kp.shape[:2]))[0])
    # DARK sees the 13x13 patch clipped by the map border near the edges: a few 1e-3 px there.
    np.testing.assert_allclose(decoded, np.floor(kp / 4 + 0.5) * 4, atol=1e-2 if decoder == "dark" else 1e-4)
    assert np.abs(decoded - kp).max() <= 2.0
    np.testing.assert_array_equal(scores, 1.0)
    on_grid = np.round(kp / 4) * 4
    decoded_grid, _ = codec.decode(codec.encode(on_grid, np.ones(kp.shape[:2]))[0])
    np.testing.assert_allclose(decoded_grid, on_grid, atol=1e-2)


def test_udp_codec_is_consistent_with_darkpose_heatmap_transform(rng):
    """image -> crop (unbiased) -> heatmap equals DarkPose's direct image -> heatmap affine."""
    codec = codec_256("udp")
    c, s = rng.uniform(100, 400, (5, 2)), np.tile([[1.5, 2.0]], (5, 1))
    pts = rng.uniform(50, 450, (5, 17, 2))
    via_crop = codec.crop_to_heatmap(g.apply_affine(pts, g.crop_matrix(c, s, 0, (192, 256), unbiased=True)))
    direct = g.apply_affine(pts, g.crop_matrix(c, s, 0, (48, 64), unbiased=True))
    np.testing.assert_allclose(via_crop, direct, atol=1e-4)
    np.testing.assert_allclose(codec.heatmap_to_crop(codec.crop_to_heatmap(pts)), pts, atol=1e-4)


# -- flip test ---------------------------------------------------------------------------------
def test_flip_average_matches_official(w32):
    args = (w32["output"], w32["output_flipped_input_raw"], COCO_17.flip_pairs)
    np.testing.assert_allclose(codec_256().flip_average(*args), w32["flip_avg"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(codec_256(flip_shift=False).flip_average(*args), w32["flip_avg_noshift"],
                               atol=1e-6, rtol=0)
    # UDP's flip is exact: no shift even with flip_shift=True
    np.testing.assert_allclose(codec_256("udp", flip_shift=True).flip_average(*args), w32["flip_avg_noshift"],
                               atol=1e-6, rtol=0)


def test_flip_test_predictions_match_official(w32):
    codec = codec_256()
    avg = codec.flip_average(w32["output"], w32["output_flipped_input_raw"], COCO_17.flip_pairs)
    preds, scores = _to_image(codec, avg, w32["center"], w32["scale"])
    np.testing.assert_allclose(preds, w32["flip_preds"], atol=ATOL_PX, rtol=0)
    np.testing.assert_allclose(scores, w32["flip_maxvals"][..., 0], atol=1e-6)


def test_flip_back_is_a_new_array_and_an_involution(w32):
    raw = w32["output_flipped_input_raw"].copy()
    back = flip_back(raw, COCO_17.flip_pairs)
    np.testing.assert_array_equal(raw, w32["output_flipped_input_raw"])
    assert not np.shares_memory(back, raw)
    np.testing.assert_array_equal(back[:, 1, :, 0], raw[:, 2, :, -1])
    np.testing.assert_array_equal(flip_back(back, COCO_17.flip_pairs), raw)
    np.testing.assert_array_equal(codec_256().flip_back(raw, COCO_17.flip_pairs), back)


@pytest.mark.parametrize("decoder", ["quarter", "dark", "udp"])
def test_flip_average_of_a_mirrored_target_returns_the_target(rng, decoder):
    """Encode k and its mirror (x -> W-1-x, pairs swapped) as a perfect model would; the flip test
    gives back k. With the official size/2 grid this holds for keypoints on the stride grid, where
    the one-pixel SHIFT_HEATMAP exactly compensates; UDP is exact everywhere, without a shift."""
    codec = codec_256(decoder)
    kp = _interior_keypoints(rng, n=8)
    if decoder != "udp":
        kp = np.round(kp / 4) * 4
    vis = np.ones(kp.shape[:2])
    heatmaps, _ = codec.encode(kp, vis)
    kp_mirror, vis_mirror = g.flip_joints_lr(kp, vis, 192, COCO_17.flip_pairs)
    heatmaps_mirror, _ = codec.encode(kp_mirror, vis_mirror)
    avg = codec.flip_average(heatmaps, heatmaps_mirror, COCO_17.flip_pairs)
    np.testing.assert_allclose(avg[..., 1:], heatmaps[..., 1:], atol=1e-6)
    decoded, _ = codec.decode(avg)
    np.testing.assert_allclose(decoded, kp, atol={"quarter": 1e-4, "dark": 1e-2, "udp": 0.05}[decoder])


# -- construction and persistence -----------------------------------------------------------------------
def test_to_dict_round_trip_with_plain_types():
    codec = HeatmapCodec((288, 384), (72, 96), 3, decoder="dark", flip_shift=False, blur_kernel=7)
    d = json.loads(json.dumps(codec.to_dict()))
    assert HeatmapCodec.from_dict(d) == codec
    assert HeatmapCodec.from_dict(d).to_dict() == codec.to_dict()
    assert codec_256("udp").encoding == "unbiased" and codec_256("dark").encoding == "msra"
    assert codec_256("udp").unbiased and not codec_256("dark").unbiased
    with pytest.raises(ConfigError, match="codec"):
        HeatmapCodec.from_dict({"input_size": [192, 256]})


@pytest.mark.parametrize("kwargs,match", [
    (dict(decoder="soft"), "decoder"), (dict(blur_kernel=4), "blur_kernel"),
    (dict(blur_kernel=0), "blur_kernel"), (dict(encoding="x"), "encoding")])
def test_invalid_settings_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        codec_256(**kwargs)


def test_inconsistent_sizes_raise_config_error():
    with pytest.raises(ConfigError, match="stride"):
        HeatmapCodec((192, 256), (48, 48), 2)
    with pytest.raises(ConfigError, match="sigma"):
        HeatmapCodec((192, 256), (48, 64), 0)


# -- pixel conventions: which decoders may share a model's forward pass ------------------------------------
def test_every_decoder_belongs_to_exactly_one_convention():
    from pose.codec import CONVENTIONS, DECODERS, decoder_convention

    assert sorted(d for names in CONVENTIONS.values() for d in names) == sorted(DECODERS)
    assert [decoder_convention(d) for d in DECODERS] == ["official", "official", "official", "udp"]
    for decoder in DECODERS:
        codec = codec_256(decoder)
        assert codec.convention == decoder_convention(decoder)
        assert codec.unbiased == (codec.convention == "udp")


@pytest.mark.parametrize("base,refused", [
    (codec_256("quarter"), "udp"), (codec_256("dark", encoding="unbiased"), "udp"),
    (codec_256("udp"), "none"), (codec_256("udp"), "quarter"), (codec_256("udp"), "dark")])
def test_with_decoding_refuses_a_decoder_of_another_convention(base, refused):
    from pose.codec import CONVENTIONS

    with pytest.raises(ConfigError) as err:
        base.with_decoding(refused)
    message = str(err.value)
    assert "\n" not in message and f"decoder '{refused}'" in message
    assert f"trained in {dict(official='the official', udp='the UDP')[base.convention]} convention" in message
    assert ", ".join(CONVENTIONS[base.convention]) in message   # the decoders that fit it
    for allowed in CONVENTIONS[base.convention]:
        other = base.with_decoding(allowed)
        assert other.convention == base.convention and other.encoding == base.encoding


def test_require_convention_names_the_model_and_the_decoders_that_fit():
    codec_256("quarter").require_convention("official", "zoo model 'm'")
    with pytest.raises(ConfigError, match=r"decoder 'udp' does not fit zoo model 'm'.*none, quarter, dark"):
        codec_256("udp").require_convention("official", "zoo model 'm'")
    with pytest.raises(ConfigError, match="unknown pixel convention"):
        codec_256("quarter").require_convention("size/2", "zoo model 'm'")


def test_udp_needs_unbiased_targets():
    with pytest.raises(ConfigError, match="udp decoder needs encoding 'unbiased'"):
        codec_256("udp", encoding="msra")


def test_default_decoder_of_a_udp_model_is_udp():
    from pose.codec import decoding_from_config, default_decoder

    assert default_decoder("", True) == "quarter" and default_decoder("", False) == "none"
    assert default_decoder("", True, "udp") == "udp" and default_decoder("dark", True, "udp") == "dark"
    assert decoding_from_config(_cfg(dict(POST_PROCESS=True)), "udp")["decoder"] == "udp"


def _cfg(test=None, **model):
    model = dict(dict(IMAGE_SIZE=[192, 256], HEATMAP_SIZE=[48, 64], SIGMA=2), **model)
    return SimpleNamespace(MODEL=SimpleNamespace(**model), TEST=SimpleNamespace(**(test or {})))


def test_build_codec_from_official_and_project_keys():
    official = build_codec(_cfg(dict(POST_PROCESS=True, SHIFT_HEATMAP=True)))
    assert official == codec_256("quarter", flip_shift=True)
    plain = build_codec(_cfg(dict(POST_PROCESS=False, SHIFT_HEATMAP=False)))
    assert plain == codec_256("none", flip_shift=False)
    dark = build_codec(_cfg(dict(POST_PROCESS=True, DECODER="dark", BLUR_KERNEL=3)))
    assert dark.decoder == "dark" and dark.blur_kernel == 3
    assert build_codec(_cfg(dict(DECODER=""), SIGMA=3)).sigma == 3.0
    with pytest.raises(ConfigError, match="TEST.DECODER"):
        build_codec(_cfg(dict(DECODER="argmax")))
    with pytest.raises(ConfigError, match="TARGET_TYPE"):
        build_codec(_cfg(TARGET_TYPE="offset"))


def test_build_codec_from_project_config():
    from pose.config import get_default_config

    cfg = get_default_config()
    codec = build_codec(cfg)
    assert codec.input_size == tuple(cfg.MODEL.IMAGE_SIZE)
    assert codec.heatmap_size == tuple(cfg.MODEL.HEATMAP_SIZE)


def _refine_dark_per_joint(heatmaps, coords, kernel):
    """Plain per-joint DARK (whole-map modulation, log, Taylor) written out as DarkPose does."""
    logs = np.log(np.maximum(dark_modulate(heatmaps, kernel), np.float32(1e-10)))
    out = coords.astype(np.float64).copy()
    h, w = heatmaps.shape[2:]
    for n, k in np.ndindex(*heatmaps.shape[:2]):
        px, py = int(coords[n, k, 0]), int(coords[n, k, 1])
        if not (1 < px < w - 2 and 1 < py < h - 2):
            continue
        m = logs[n, k].astype(np.float64)
        dx, dy = 0.5 * (m[py, px + 1] - m[py, px - 1]), 0.5 * (m[py + 1, px] - m[py - 1, px])
        dxx = 0.25 * (m[py, px + 2] - 2 * m[py, px] + m[py, px - 2])
        dyy = 0.25 * (m[py + 2, px] - 2 * m[py, px] + m[py - 2, px])
        dxy = 0.25 * (m[py + 1, px + 1] - m[py - 1, px + 1] - m[py + 1, px - 1] + m[py - 1, px - 1])
        hess = np.array([[dxx, dxy], [dxy, dyy]])
        if np.linalg.det(hess) != 0:
            out[n, k] -= np.linalg.solve(hess, [dx, dy])
    return out


@pytest.mark.parametrize("kernel", [3, 11])
def test_dark_fast_path_equals_whole_map_modulation(rng, dec, kernel):
    """The 5x5-neighbourhood blur gives the whole-map result, on smooth and on pathological maps
    (mixed signs, isolated tiny peaks, where the 1e-10 clamp takes the whole-map path)."""
    smooth = dec["heatmaps"][:3]
    wild = rng.normal(0, 1, (2, 17, 64, 48)).astype(np.float32)
    wild[0, :5] = -1.0
    wild[0, :5, 30, 20] = 1e-12                                          # tiny isolated positive peak
    wild[1] *= rng.uniform(size=(17, 64, 48)) > 0.97                    # sparse spikes
    for hm in (smooth, wild):
        coords, _ = argmax_heatmaps(hm)
        expected = _refine_dark_per_joint(hm, coords, kernel)
        np.testing.assert_allclose(refine_dark(hm, coords, kernel), expected, atol=ATOL_PX, rtol=0)
