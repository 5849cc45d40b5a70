"""pose.geometry against the official transforms (golden_transforms, golden_e2e) and its own identities."""
import json
import subprocess
import sys

import numpy as np
import pytest

from pose import geometry as g
from pose.imageio import bgr_to_rgb
from pose.keypoints import COCO_17, MPII_16

ATOL = 1e-5          # reference README: transforms and targets


@pytest.fixture(scope="module")
def tf(golden):
    return golden("golden_transforms_seed0.npz")


# -- boxes ---------------------------------------------------------------------------------------
def test_box_conversions_round_trip(rng):
    boxes = rng.uniform(0, 300, size=(20, 4))
    xyxy = g.xywh_to_xyxy(boxes)
    np.testing.assert_allclose(xyxy[:, 2:], boxes[:, :2] + boxes[:, 2:])
    np.testing.assert_allclose(g.xyxy_to_xywh(xyxy), boxes, atol=1e-12)


def test_box_to_center_scale_matches_official(tf):
    centers, scales = g.boxes_to_center_scale(tf["box_xywh"], (192, 256))
    assert centers.dtype == np.float32 and scales.dtype == np.float32
    np.testing.assert_array_equal(centers, tf["box_center"])
    np.testing.assert_array_equal(scales, tf["box_scale"])


def test_box_to_center_scale_only_grows_to_the_input_aspect(rng):
    boxes = np.concatenate([rng.uniform(0, 100, (50, 2)), rng.uniform(1, 300, (50, 2))], axis=1)
    _, scales = g.boxes_to_center_scale(boxes, (192, 256), padding=1.0)
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], 0.75, rtol=1e-6)
    assert np.all(scales * 200 >= boxes[:, 2:] * (1 - 1e-6))


def _e2e_sets(golden):
    e2e = golden("golden_e2e_coco_seed0.json")
    gt_files = {"coco": "coco/test_coco.json",
                "coco_mini": "coco-mini/annotations/person_keypoints_val2017.json"}
    return [(e2e["sets"][name], gt) for name, gt in gt_files.items()]


def test_clean_gt_boxes_and_windows_match_official_records(golden, data_dir):
    """Real COCO annotations: the cleaned box and its centre/scale, exactly as the official dataset."""
    checked = 0
    for s, gt_file in _e2e_sets(golden):
        gt = json.loads((data_dir / gt_file).read_text())
        sizes = {im["file_name"]: (im["width"], im["height"]) for im in gt["images"]}
        for rec in s["gt_boxes"]["records"]:
            w, h = sizes[rec["image"]]
            boxes, valid = g.clean_gt_boxes(np.array([rec["bbox"]]), w, h, areas=[rec["area"]])
            assert valid[0]
            np.testing.assert_allclose(boxes[0], rec["clean_bbox"], atol=1e-9)
            c, sc = g.boxes_to_center_scale(boxes, (192, 256))
            np.testing.assert_array_equal(c[0], np.float32(rec["center"]))
            np.testing.assert_array_equal(sc[0], np.float32(rec["scale"]))
            checked += 1
        for rec in s["det_boxes"]["records"]:  # detections are used as given
            c, sc = g.boxes_to_center_scale(np.array([rec["bbox"]]), (192, 256))
            np.testing.assert_array_equal(c[0], np.float32(rec["center"]))
            np.testing.assert_array_equal(sc[0], np.float32(rec["scale"]))
    assert checked == 80


def test_clean_gt_boxes_clips_and_rejects():
    boxes = np.array([[-5, -3, 20, 10], [630, 470, 50, 50], [700, 10, 5, 5], [10, 10, 0.5, 0.5],
                      [10, 10, 0.5, 5]], float)
    out, valid = g.clean_gt_boxes(boxes, 640, 480)
    np.testing.assert_allclose(out[0], [0, 0, 19, 9])
    np.testing.assert_allclose(out[1], [630, 470, 9, 9])
    np.testing.assert_allclose(out[3], [10, 10, 0, 0])
    np.testing.assert_allclose(out[4], [10, 10, 0, 4])          # kept: x2 == x1, the window comes from h (official)
    # the 0x0 cleaned box (official: kept, a point window -> singular crop) is dropped
    np.testing.assert_array_equal(valid, [True, True, False, False, True])
    _, valid = g.clean_gt_boxes(boxes, 640, 480, areas=[1, 1, 1, 1, 0])
    np.testing.assert_array_equal(valid, [True, True, False, False, False])


# -- affine matrices ---------------------------------------------------------------------------------
def test_crop_matrix_matches_official_with_rotation(tf):
    m = g.crop_matrix(tf["aff_center"], tf["aff_scale"], tf["aff_rot"], tuple(tf["aff_output_size"]))
    assert m.shape == (10, 2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, tf["aff_trans"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(g.invert_affine(m), tf["aff_trans_inv"], atol=ATOL, rtol=0)
    points = g.apply_affine(tf["aff_points"], m)
    np.testing.assert_allclose(points, tf["aff_points_transformed"], atol=ATOL, rtol=0)


def test_heatmap_to_image_matches_official_transform_preds(tf):
    m_inv = g.invert_affine(g.crop_matrix(tf["aff_center"], tf["aff_scale"], 0, (48, 64)))
    np.testing.assert_allclose(m_inv, tf["aff_trans_hm_inv"], atol=ATOL, rtol=0)
    preds = g.crop_to_image(tf["tp_coords_hm"], tf["aff_center"], tf["aff_scale"], (48, 64))
    np.testing.assert_allclose(preds, tf["tp_preds"], atol=1e-3, rtol=0)


def test_unbiased_matrix_matches_darkpose(tf):
    m = g.crop_matrix(tf["aff_center"], tf["aff_scale"], tf["aff_rot"], (192, 256), unbiased=True)
    np.testing.assert_allclose(m, tf["dark_aff_trans"], atol=ATOL, rtol=0)
    preds = g.crop_to_image(tf["tp_coords_hm"], tf["aff_center"], tf["aff_scale"], (48, 64), unbiased=True)
    np.testing.assert_allclose(preds, tf["dark_tp_preds"], atol=1e-3, rtol=0)


def test_pixel_conventions_closed_form():
    c, s = np.array([[100.0, 50.0]]), np.array([[1.0, 4 / 3]])
    m = g.crop_matrix(c, s, 0, (192, 256))
    np.testing.assert_allclose(g.apply_affine(c[:, None], m)[0, 0], [96, 128], atol=1e-9)       # size/2
    np.testing.assert_allclose(m[0, 0, 0], 192 / 200, atol=1e-9)
    mu = g.crop_matrix(c, s, 0, (192, 256), unbiased=True)
    np.testing.assert_allclose(g.apply_affine(c[:, None], mu)[0, 0], [95.5, 127.5], atol=1e-9)   # (size-1)/2
    np.testing.assert_allclose(mu[0, 0, 0], 191 / 199, atol=1e-9)


def test_rotation_by_90_degrees_on_a_known_point():
    # Window of 200 px mapped to 200 px: pure rotation about the centre. A point 10 px to the right
    # of the centre in the image lands 10 px *above* the crop centre for rot = +90.
    c = np.array([50.0, 60.0])
    m = g.crop_matrix(c, np.array([1.0, 1.0]), 90.0, (200, 200))
    out = g.apply_affine(np.array([[60.0, 60.0]]), m)
    np.testing.assert_allclose(out[0], [100, 90], atol=1e-4)


def test_inverse_composed_with_forward_is_identity(rng):
    n = 12
    c = rng.uniform(0, 500, (n, 2))
    s = rng.uniform(0.2, 3, (n, 2))
    rot = rng.uniform(-90, 90, n)
    for unbiased in (False, True):
        m = g.crop_matrix(c, s, rot, (192, 256), unbiased=unbiased)
        pts = rng.uniform(-50, 600, (n, 17, 2))
        back = g.apply_affine(g.apply_affine(pts, m), g.invert_affine(m))
        np.testing.assert_allclose(back, pts, atol=1e-9)
        last_row = np.tile([[[0, 0, 1]]], (n, 1, 1))
        eye = np.concatenate([g.invert_affine(m), last_row], 1) @ np.concatenate([m, last_row], 1)
        np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-12)


def test_single_window_shapes():
    m = g.crop_matrix(np.array([10.0, 20.0]), np.array([1.0, 1.0]), 0, (48, 64))
    assert m.shape == (2, 3)
    assert g.apply_affine(np.zeros((5, 2)), m).shape == (5, 2)
    img = np.zeros((30, 40, 3), np.uint8)
    assert g.warp_crop(img, m, (48, 64)).shape == (64, 48, 3)


# -- crops ---------------------------------------------------------------------------------------
def test_crop_of_a_real_image_is_identical_to_official(tf):
    m = g.crop_matrix(tf["crop_center"], tf["crop_scale"], tf["crop_rot"], (192, 256))
    crops = g.warp_crop(bgr_to_rgb(tf["crop_image_bgr"]), m, (192, 256))
    assert crops.shape == (3, 256, 192, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops, tf["crop_rgb"])


def test_warp_crop_outside_the_image_is_zero():
    img = np.full((20, 20, 3), 255, np.uint8)
    m = g.crop_matrix(np.array([[500.0, 500.0]]), np.array([[0.1, 0.1]]), 0, (8, 8))
    assert g.warp_crop(img, m, (8, 8)).max() == 0


# -- flips ---------------------------------------------------------------------------------------
def test_training_flip_of_joints_matches_official(tf):
    joints, vis = g.flip_joints_lr(tf["flip_joints_in"], tf["flip_vis_in"], 320, COCO_17.flip_pairs)
    np.testing.assert_allclose(joints, tf["flip_joints_out"], atol=ATOL)
    np.testing.assert_array_equal(vis, tf["flip_vis_out"])
    # (K,) visibility gives the same joints
    joints1, vis1 = g.flip_joints_lr(tf["flip_joints_in"], tf["flip_vis_in"][:, 0], 320, COCO_17.flip_pairs)
    np.testing.assert_allclose(joints1, tf["flip_joints_out"], atol=ATOL)
    np.testing.assert_array_equal(vis1, tf["flip_vis_out"][:, 0])


@pytest.mark.parametrize("spec", [COCO_17, MPII_16], ids=lambda s: s.name)
def test_flip_twice_is_identity(rng, spec):
    k = spec.num_keypoints
    joints = rng.uniform(0, 300, (4, k, 2))
    vis = (rng.uniform(size=(4, k)) > 0.3).astype(np.float64)
    once, v1 = g.flip_joints_lr(joints, vis, 320, spec.flip_pairs)
    twice, v2 = g.flip_joints_lr(once, v1, 320, spec.flip_pairs)
    np.testing.assert_allclose(twice, joints * vis[..., None], atol=1e-12)
    np.testing.assert_array_equal(v2, vis)
    assert not np.shares_memory(once, joints)


def test_flip_permutation_is_an_involution():
    perm = g.flip_permutation(17, COCO_17.flip_pairs)
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    np.testing.assert_array_equal(perm, COCO_17.flip_permutation())


def test_geometry_and_codec_import_neither_torch_nor_yacs():
    code = ("import sys, pose.geometry, pose.codec; "
            "bad = [m for m in ('torch', 'yacs') if m in sys.modules]; sys.exit(repr(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_box_problems_names_why_a_box_cannot_be_cropped():
    boxes = [[0, 0, 10, 10], [10, 10, 0, 0], [10, 10, -5, -5], [1e6, 1e6, 10, 10], [np.nan, 0, 1, 1],
             [-20, -20, 10, 10], [-5, -5, 10, 10], [0, 0, np.inf, 4]]
    codes = g.box_problems(boxes, image_size=(100, 100))
    assert codes.tolist() == [0, 2, 2, 3, 1, 3, 0, 1]
    assert g.box_problems(boxes).tolist() == [0, 2, 2, 0, 1, 0, 0, 1]  # no image: only the box itself decides
    assert g.count_box_problems(codes) == "2 non-finite boxes, 2 zero-size boxes, 2 boxes outside the image"
    assert g.count_box_problems(np.zeros(3, int)) == ""
    assert g.count_box_problems([2, 3, 3, 4]) == "1 zero-size box, 2 boxes outside the image, 1 box too large"


def test_box_problems_huge_boxes_are_too_large_not_cropped():
    big = g.MAX_BOX_EXTENT
    boxes = [[-1e30, -1e30, 2e30, 2e30], [0, 0, big, 10], [0, 0, big + 1, 10], [big, 0, 1, 1], [0, 0, 1e39, 1e39]]
    assert g.box_problems(boxes).tolist() == [4, 0, 4, 4, 4]
    assert g.box_problems(boxes, image_size=(640, 480)).tolist() == [4, 0, 4, 4, 4]  # "too large" comes first


def test_a_box_that_box_problems_accepts_has_a_usable_window(rng):
    """Readers filter with box_problems, the dataset and predictor check windows: they must agree."""
    def sides(n):
        return np.exp(rng.uniform(np.log(1e-3), np.log(g.MAX_BOX_EXTENT), n)) * rng.choice([1, 0.5, 0.0, -1], n)

    n = 4000
    for unbiased, reach in ((False, g.MAX_BOX_EXTENT / 2), (True, 1e5)):  # UDP: ~1 px boxes far out collapse
        boxes = np.stack([rng.uniform(-reach, reach, n), rng.uniform(-reach, reach, n), sides(n), sides(n)], axis=1)
        boxes = np.concatenate([boxes, [[0, 0, 1, 0.1], [0, 0, 0.99, 0.99], [0, 0, g.MAX_BOX_EXTENT, 1]]])
        ok = g.box_problems(boxes) == 0
        assert 0.2 < ok.mean() < 0.8 and not ok[-2] and ok[-1]
        for input_size in ((192, 256), (256, 256), (288, 384)):
            c, s = g.boxes_to_center_scale(boxes[ok], input_size)
            assert not g.window_problems(c, s, input_size, unbiased=unbiased).any()


def test_gt_box_problems_the_box_decides_not_the_area():
    """Issue 16: [10, 10, -5, -5] / [10, 10, 0, 0] with a positive area used to survive as a 0x0 box."""
    boxes = [[10, 10, -5, -5], [10, 10, 0, 0], [10, 10, 0.5, 0.5], [1e6, 1e6, 10, 10], [99.5, 5, 10, 10],
             [10, 10, 20, 30], [10, 10, 20, 30], [-50, 5, 20, 20]]
    areas = [100, 100, 100, 100, 100, 600, 0, 400]
    codes = g.gt_box_problems(boxes, 100, 100, areas=areas)
    #                       neg   0x0  cleans to 0x0  far  last column  ok  area 0  left of the image
    assert codes.tolist() == [2, 2, 2, 3, 3, 0, 5, 3]
    assert g.count_box_problems(codes) == ("3 zero-size boxes, 3 boxes outside the image, "
                                           "1 annotation with area <= 0")
    # without areas the official area rule is simply not applied
    assert g.gt_box_problems(boxes, 100, 100).tolist() == [2, 2, 2, 3, 3, 0, 0, 3]
    _, valid = g.clean_gt_boxes(boxes, 100, 100, areas=areas)
    assert valid.tolist() == (codes == 0).tolist()


def test_window_problems_catches_what_would_make_a_singular_crop():
    centers = [[50, 50], [50, 50], [np.nan, 50], [50, 50], [1e30, 5], [50, 50], [50, 50]]
    scales = [[1, 1], [0, 0], [1, 1], [-1, 1], [1, 1], [1e300, 1e300], [0.005, 0.005]]
    assert g.window_problems(centers, scales).tolist() == [0, 2, 1, 2, 4, 4, 0]
    # a 1-pixel window is singular only in the UDP (size - 1) convention: needs the grid to tell
    assert g.window_problems(centers, scales, (48, 64)).tolist() == [0, 2, 1, 2, 4, 4, 0]
    assert g.window_problems(centers, scales, (48, 64), unbiased=True).tolist() == [0, 2, 1, 2, 4, 4, 2]
