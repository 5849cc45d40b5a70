"""Training augmentation: official half-body golden values, jitter ranges, flips, reproducibility."""
import numpy as np
import pytest

from pose.data.augment import (
    AugmentParams,
    apply_augmentation,
    flip_center,
    flip_image_and_joints,
    half_body_window,
    random_scale_rotation,
    sample_augmentation,
)
from pose.keypoints import COCO_17

COCO_UPPER = COCO_17.upper_body_ids
COCO_LOWER = COCO_17.lower_body_ids


def test_half_body_matches_official(golden):
    tf = golden("golden_transforms_seed0.npz")
    for row in range(len(tf["hb_draw"])):
        case = row // 2
        out = half_body_window(tf["tgt_joints"][case], tf["tgt_vis"][case], upper_ids=COCO_UPPER,
                               lower_ids=COCO_LOWER, aspect_ratio=192 / 256, num_joints_half_body=8,
                               draw_value=tf["hb_draw"][row])
        if np.isnan(tf["hb_center"][row]).any():
            assert out is None
            continue
        center, scale = out
        np.testing.assert_allclose(center, tf["hb_center"][row], atol=1e-5, rtol=0)
        np.testing.assert_allclose(scale, tf["hb_scale"][row], atol=1e-5, rtol=0)


def _upright_person():
    """17 visible COCO joints: upper body around y=50..100, lower body y=150..250."""
    joints = np.zeros((17, 2))
    joints[:11] = np.stack([np.linspace(40, 60, 11), np.linspace(50, 100, 11)], axis=1)
    joints[11:] = np.stack([np.linspace(35, 65, 6), np.linspace(150, 250, 6)], axis=1)
    return joints, np.ones(17)


def test_half_body_picks_half_and_handles_degenerate_cases():
    joints, vis = _upright_person()
    kw = dict(upper_ids=COCO_UPPER, lower_ids=COCO_LOWER, aspect_ratio=0.75)
    c_up, s_up = half_body_window(joints, vis, draw_value=0.0, **kw)
    c_lo, s_lo = half_body_window(joints, vis, draw_value=0.9, **kw)
    np.testing.assert_allclose(c_up, joints[:11].mean(0), atol=1e-4)
    np.testing.assert_allclose(c_lo, joints[11:].mean(0), atol=1e-4)
    # h = 100 (lower body) -> w = 75 by the aspect fix; x 1.5 padding, / 200
    np.testing.assert_allclose(s_lo, [75 * 1.5 / 200, 100 * 1.5 / 200], atol=1e-6)
    # too few visible joints for the precondition, or fewer than 2 chosen joints
    assert half_body_window(joints, vis, draw_value=0.0, num_joints_half_body=17, **kw) is None
    one = np.zeros(17)
    one[0] = 1
    assert half_body_window(joints, one, draw_value=0.0, **kw) is None


def test_half_body_draw_modes_choose_upper_with_the_stated_probability():
    joints, vis = _upright_person()
    rng = np.random.default_rng(0)
    kw = dict(upper_ids=COCO_UPPER, lower_ids=COCO_LOWER, aspect_ratio=0.75, rng=rng)
    upper_y = joints[:11, 1].mean()
    n = 3000
    fair = np.mean([half_body_window(joints, vis, draw="fair", **kw)[0][1] < 120 for _ in range(n)])
    official = np.mean([half_body_window(joints, vis, draw="official", **kw)[0][1] < 120 for _ in range(n)])
    assert upper_y < 120
    assert fair == pytest.approx(0.5, abs=0.04)
    assert official == pytest.approx(0.6915, abs=0.04)       # Phi(0.5)
    with pytest.raises(ValueError):
        half_body_window(joints, vis, draw="coin", **kw)


# -- what an unchanged official YAML trains with (issue 19) ----------------------------------------------
def _train_set(config_name):
    from pose.codec import build_codec
    from pose.config import load_config
    from pose.data import build_dataset
    from tests.conftest import DATA, REPO

    coco = DATA / "coco"   # only the paths change: the recipe keys stay as the file has them
    cfg = load_config(REPO / "configs" / config_name, ["DATA_DIR", "", "DATASET.TRAIN_ANN_FILE",
                                                       str(coco / "test_coco.json"), "DATASET.TRAIN_IMAGE_DIR",
                                                       str(coco)])
    return cfg, build_dataset(cfg, "train", build_codec(cfg))


@pytest.mark.parametrize("config_name,draw,p_upper", [
    ("coco_hrnet_w32_256x192.yaml", "official", 0.6915),   # Phi(0.5), as np.random.randn() < 0.5
    ("tiny_hrnet_128x96.yaml", "fair", 0.5)])                # the tiny config's explicit choice
def test_training_set_of_a_config_draws_the_half_body_it_declares(config_name, draw, p_upper):
    cfg, dataset = _train_set(config_name)
    assert cfg.DATASET.HALF_BODY_DRAW == draw and dataset.aug["half_body_draw"] == draw
    assert dataset.aug["half_body_prob"] == pytest.approx(0.3) and dataset.aug["num_joints_half_body"] == 8
    joints, vis = _upright_person()
    halves = []
    for seed in range(4000):   # the dataset's own augmentation settings, as __getitem__ passes them
        params = sample_augmentation(np.random.default_rng(seed), np.array([50.0, 150.0]), np.array([1.0, 1.5]),
                                     joints, vis, image_width=200, input_size=dataset.input_size,
                                     upper_ids=COCO_UPPER, lower_ids=COCO_LOWER, **dataset.aug)
        if params.half_body:
            halves.append(params.center[1] < 120)     # upper-body window centre (y 50..100)
    assert 0.25 < len(halves) / 4000 < 0.35
    assert np.mean(halves) == pytest.approx(p_upper, abs=0.04)


def test_official_yaml_half_body_windows_follow_the_official_normal_draw(golden):
    """Golden windows (official ``half_body_transform`` at draws 0.0 and 1.0) through the official YAML's
    draw: each seeded window equals the golden row that the seed's standard-normal value selects."""
    tf = golden("golden_transforms_seed0.npz")
    cfg, dataset = _train_set("coco_hrnet_w32_256x192.yaml")
    aspect = dataset.input_size[0] / dataset.input_size[1]
    upper_picks = []
    for case in range(len(tf["hb_draw"]) // 2):
        rows = {float(tf["hb_draw"][r]): r for r in (2 * case, 2 * case + 1)}
        if np.isnan(tf["hb_center"][rows[0.0]]).any() or np.allclose(tf["hb_center"][rows[0.0]],
                                                                      tf["hb_center"][rows[1.0]]):
            continue   # no window, or both halves give the same one: the draw cannot show
        for seed in range(100):
            z = np.random.default_rng(seed).standard_normal()
            out = half_body_window(tf["tgt_joints"][case], tf["tgt_vis"][case], upper_ids=COCO_UPPER,
                                   lower_ids=COCO_LOWER, aspect_ratio=aspect,
                                   num_joints_half_body=dataset.aug["num_joints_half_body"],
                                   draw=dataset.aug["half_body_draw"], rng=np.random.default_rng(seed))
            row = rows[0.0] if z < 0.5 else rows[1.0]
            np.testing.assert_allclose(out[0], tf["hb_center"][row], atol=1e-5, rtol=0)
            np.testing.assert_allclose(out[1], tf["hb_scale"][row], atol=1e-5, rtol=0)
            upper_picks.append(z < 0.5)
    assert len(upper_picks) >= 200 and np.mean(upper_picks) == pytest.approx(0.69, abs=0.07)


def test_random_scale_rotation_ranges():
    rng = np.random.default_rng(1)
    draws = np.array([random_scale_rotation(rng, 0.35, 45.0) for _ in range(4000)])
    mult, rot = draws[:, 0], draws[:, 1]
    assert mult.min() >= 0.65 and mult.max() <= 1.35
    assert np.isclose(mult, 0.65).any() and np.isclose(mult, 1.35).any()   # clipping is hit
    assert rot.min() >= -90 and rot.max() <= 90
    assert np.mean(rot != 0) == pytest.approx(0.6, abs=0.03)
    assert random_scale_rotation(rng, 0.0, 0.0) == (1.0, 0.0)


def test_flip_image_and_joints_matches_official(golden):
    tf = golden("golden_transforms_seed0.npz")
    image = np.arange(2 * 320 * 3, dtype=np.uint8).reshape(2, 320, 3)
    flipped, joints, vis = flip_image_and_joints(image, tf["flip_joints_in"], tf["flip_vis_in"],
                                                 COCO_17.flip_pairs)
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    assert flipped.flags.c_contiguous
    np.testing.assert_allclose(joints, tf["flip_joints_out"], atol=1e-5)
    np.testing.assert_array_equal(vis, tf["flip_vis_out"])
    np.testing.assert_allclose(flip_center(np.array([10.0, 7.0]), 320), [309.0, 7.0])


def _sample(seed, **kw):
    joints, vis = _upright_person()
    args = dict(image_width=640, input_size=(192, 256), upper_ids=COCO_UPPER, lower_ids=COCO_LOWER)
    args.update(kw)
    return sample_augmentation(np.random.default_rng(seed), np.array([50.0, 150.0]), np.array([1.0, 4 / 3]),
                               joints, vis, **args)


def test_sample_augmentation_is_reproducible_and_varies_with_seed():
    a, b, c = _sample(3, half_body_prob=0.3), _sample(3, half_body_prob=0.3), _sample(4, half_body_prob=0.3)
    assert isinstance(a, AugmentParams)
    assert (a.rotation, a.flip, a.half_body) == (b.rotation, b.flip, b.half_body)
    np.testing.assert_array_equal(a.center, b.center)
    np.testing.assert_array_equal(a.scale, b.scale)
    assert not (np.array_equal(a.scale, c.scale) and a.rotation == c.rotation)


def test_sample_augmentation_switches():
    ident = _sample(0, scale_factor=0.0, rot_factor=0.0, flip_prob=0.0, half_body_prob=0.0)
    np.testing.assert_array_equal(ident.center, [50.0, 150.0])
    np.testing.assert_allclose(ident.scale, [1.0, 4 / 3])
    assert ident.rotation == 0.0 and not ident.flip and not ident.half_body
    flipped = _sample(0, scale_factor=0.0, rot_factor=0.0, flip_prob=1.0)
    assert flipped.flip
    np.testing.assert_array_equal(flipped.center, [640 - 50.0 - 1, 150.0])
    half = _sample(0, scale_factor=0.0, rot_factor=0.0, flip_prob=0.0, half_body_prob=1.0)
    assert half.half_body and not np.allclose(half.center, [50.0, 150.0])


def test_apply_augmentation_flips_only_when_asked():
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, 0] = 255
    joints, vis = _upright_person()
    params = AugmentParams(center=np.zeros(2), scale=np.ones(2))
    out_image, out_joints, _ = apply_augmentation(image, joints, vis, params, COCO_17.flip_pairs)
    assert out_image is image and out_joints is joints
    params = AugmentParams(center=np.zeros(2), scale=np.ones(2), flip=True)
    out_image, out_joints, out_vis = apply_augmentation(image, joints, vis, params, COCO_17.flip_pairs)
    assert (out_image[:, -1] == 255).all()
    assert out_joints[1, 0] == pytest.approx(6 - 1 - joints[2, 0])       # left eye <- mirrored right eye


def test_half_body_of_joints_on_one_point_gives_no_window():
    """Issue 16 sibling: chosen joints that coincide would make a zero-size window (a flat training crop)."""
    joints, vis = _upright_person()
    kw = dict(upper_ids=COCO_UPPER, lower_ids=COCO_LOWER, aspect_ratio=0.75)
    joints[:11] = [40.0, 30.0]
    assert half_body_window(joints, vis, draw_value=0.0, **kw) is None
    joints[:11, 1] += np.arange(11)  # a vertical line still spans a window (w from h by the aspect)
    center, scale = half_body_window(joints, vis, draw_value=0.0, **kw)
    assert (scale > 0).all()
