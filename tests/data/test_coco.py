"""COCO / MPII readers against the official sample lists, the dataset items, and malformed input."""
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from pose.codec import HeatmapCodec
from pose.config import get_default_config
from pose.data import TopDownDataset, build_dataset, load_coco_det_samples, load_coco_gt_samples, load_mpii_samples
from pose.errors import DataError
from pose.keypoints import COCO_17, MPII_16

INPUT = (192, 256)


@pytest.fixture(scope="module")
def e2e(golden):
    return golden("golden_e2e_coco_seed0.json")


def _paths(data_dir, name):
    if name == "coco":
        return data_dir / "coco" / "test_coco.json", data_dir / "coco"
    mini = data_dir / "coco-mini"
    return mini / "annotations" / "person_keypoints_val2017.json", mini / "val2017"


def _check_common(sample, rec):
    assert sample.image_path.endswith("/" + rec["image"])
    assert sample.image_id == rec["image_id"]
    np.testing.assert_allclose(sample.center, rec["center"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(sample.scale, rec["scale"], atol=1e-5, rtol=0)
    assert sample.box_score == pytest.approx(rec["box_score"], abs=1e-7)


@pytest.mark.parametrize("name, count", [("coco", 12), ("coco_mini", 68)])
def test_gt_samples_match_official_order_and_windows(e2e, data_dir, name, count):
    ann, images = _paths(data_dir, name)
    samples = load_coco_gt_samples(ann, images, input_size=INPUT)
    records = e2e["sets"][name]["gt_boxes"]["records"]
    assert len(samples) == len(records) == count
    for sample, rec in zip(samples, records):
        _check_common(sample, rec)
        assert sample.ann_id == rec["ann_id"] and sample.det_index is None
        np.testing.assert_allclose(sample.bbox_xywh, rec["clean_bbox"], atol=1e-5, rtol=0)
        assert sample.joints.shape == (17, 2) and sample.joints_visible.shape == (17,)
        assert set(np.unique(sample.joints_visible)) <= {0.0, 1.0} and sample.joints_visible.sum() > 0


def test_det_samples_match_official_coco(e2e, data_dir):
    ann, images = _paths(data_dir, "coco")
    det_file = data_dir / "coco" / "test_coco_det_AP_H_56.json"
    samples = load_coco_det_samples(det_file, ann, images, input_size=INPUT)
    records = e2e["sets"]["coco"]["det_boxes"]["records"]
    assert len(samples) == len(records) == 118
    for sample, rec in zip(samples, records):
        _check_common(sample, rec)
        assert sample.det_index == rec["det_index"] and sample.ann_id is None
        np.testing.assert_allclose(sample.bbox_xywh, rec["bbox"], atol=0, rtol=0)   # used as given
        assert sample.joints_visible.sum() == 0


def test_det_samples_match_official_coco_mini(e2e, data_dir, tmp_path):
    ann, images = _paths(data_dir, "coco_mini")
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(e2e["sets"]["coco_mini"]["detections"]))
    records = e2e["sets"]["coco_mini"]["det_boxes"]["records"]
    for source in (det_file, e2e["sets"]["coco_mini"]["detections"]):       # a path or the loaded list
        samples = load_coco_det_samples(source, ann, images, input_size=INPUT)
        assert len(samples) == len(records) == 258
        for sample, rec in zip(samples, records):
            _check_common(sample, rec)
            assert sample.det_index == rec["det_index"]


def test_det_score_threshold_and_categories(data_dir, tmp_path):
    ann, images = _paths(data_dir, "coco")
    dets = json.loads((data_dir / "coco" / "test_coco_det_AP_H_56.json").read_text())
    dets.append({"image_id": 785, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 1.0})   # not a person
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    kept = load_coco_det_samples(path, ann, images, input_size=INPUT, image_thre=0.5)
    assert len(kept) == sum(d["score"] >= 0.5 for d in dets if d["category_id"] == 1) < 118
    assert all(s.box_score >= 0.5 for s in kept)


def test_det_with_unknown_image_id_is_skipped_with_warning(data_dir, tmp_path, caplog):
    ann, images = _paths(data_dir, "coco")
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9},
                                {"image_id": 123456, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}]))
    with caplog.at_level(logging.WARNING):
        samples = load_coco_det_samples(path, ann, images, input_size=INPUT)
    assert [s.det_index for s in samples] == [0]
    assert "123456" in caplog.text and "dets.json" in caplog.text


def test_missing_images_error_or_skip(data_dir, tmp_path, caplog):
    ann, images = _paths(data_dir, "coco")
    partial = tmp_path / "images"
    partial.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(images / name, partial / name)
    with pytest.raises(DataError) as err:
        load_coco_gt_samples(ann, partial, input_size=INPUT)
    msg = str(err.value)
    assert "\n" not in msg and "000000196141.jpg" in msg and "1 other" in msg and "test_coco.json" in msg
    with caplog.at_level(logging.WARNING):
        samples = load_coco_gt_samples(ann, partial, input_size=INPUT, skip_missing_images=True)
    assert {s.image_id for s in samples} == {785, 40083}
    assert "2 listed image(s) are missing" in caplog.text
    with pytest.raises(DataError, match="image folder .*nowhere.* does not exist"):
        load_coco_gt_samples(ann, tmp_path / "nowhere", input_size=INPUT)


def test_posetrack_file_without_area_loads(data_dir, caplog):
    root = data_dir / "posetrack18"
    # PoseTrack's 17 names are not COCO's (head_bottom/head_top where COCO has the eyes): refused by default.
    with pytest.raises(DataError, match=r"categories\[0\]\.keypoints\[1\] is 'head_bottom'.*'left_eye'"):
        load_coco_gt_samples(root / "annotations" / "test_posetrack18_val.json", root, input_size=INPUT)
    with caplog.at_level(logging.WARNING):
        samples = load_coco_gt_samples(root / "annotations" / "test_posetrack18_val.json", root,
                                       input_size=INPUT, check_names=False)
    assert "no 'area'" in caplog.text
    data = json.loads((root / "annotations" / "test_posetrack18_val.json").read_text())
    expected = [a["id"] for img in data["images"] for a in data["annotations"]
                if a["image_id"] == img["id"] and max(a["keypoints"]) > 0 and not a["iscrowd"]]
    assert [s.ann_id for s in samples] == expected and len(samples) > 0


def test_mpii_samples_follow_official_adjustments(data_dir):
    ann = data_dir / "mpii" / "test_mpii.json"
    raw = json.loads(ann.read_text())
    samples = load_mpii_samples(ann, data_dir / "mpii")
    assert len(samples) == len(raw) == 5
    for sample, entry in zip(samples, raw):
        s = entry["scale"]
        np.testing.assert_allclose(sample.center, [entry["center"][0] - 1, entry["center"][1] + 15 * s - 1])
        np.testing.assert_allclose(sample.scale, [1.25 * s, 1.25 * s])
        np.testing.assert_allclose(sample.joints, np.asarray(entry["joints"]) - 1)
        np.testing.assert_array_equal(sample.joints_visible, np.asarray(entry["joints_vis"]) > 0)
        assert sample.image_path.endswith(entry["image"]) and sample.joints.shape == (16, 2)
    assert samples[0].image_id == 5808361


# ------------------------------------------------------------------------------------------------
# Dataset items
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_samples(data_dir):
    ann, images = _paths(data_dir, "coco")
    return load_coco_gt_samples(ann, images, input_size=INPUT)


@pytest.fixture(scope="module")
def codec():
    return HeatmapCodec(INPUT, (48, 64), 2.0)


def test_eval_item_is_the_official_crop(coco_samples):
    from pose.imageio import read_image_rgb
    ds = TopDownDataset(coco_samples, input_size=INPUT, spec=COCO_17)
    item = ds[3]
    assert item["image"].shape == (256, 192, 3) and item["image"].dtype == np.uint8
    assert item["center"].shape == (2,) and item["scale"].shape == (2,)
    assert item["image_id"] == coco_samples[3].image_id and item["index"] == 3 and item["box_score"] == 1.0
    # Official "size/2" convention: crop pixel p samples image centre + (p - size/2) * s.
    image = read_image_rgb(coco_samples[3].image_path).astype(np.float64)
    s = coco_samples[3].scale[0] * 200 / INPUT[0]
    for px, py in [(96, 128), (60, 100), (150, 200)]:
        x, y = coco_samples[3].center + (np.array([px, py]) - np.array(INPUT) / 2) * s
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        expected = ((1 - fx) * (1 - fy) * image[y0, x0] + fx * (1 - fy) * image[y0, x0 + 1]
                    + (1 - fx) * fy * image[y0 + 1, x0] + fx * fy * image[y0 + 1, x0 + 1])
        np.testing.assert_allclose(item["image"][py, px], expected, atol=1.5)


def _train_ds(samples, codec, **kw):
    args = dict(input_size=INPUT, spec=COCO_17, codec=codec, train=True, seed=5, half_body_prob=0.3)
    args.update(kw)
    return TopDownDataset(samples, **args)


def test_train_item_shapes_and_reproducibility(coco_samples, codec):
    ds = _train_ds(coco_samples, codec)
    a = ds[2]
    assert a["image"].shape == (256, 192, 3) and a["image"].dtype == np.uint8
    assert a["target"].shape == (17, 64, 48) and a["target"].dtype == np.float32
    assert a["target_weight"].shape == (17,) and a["target_weight"].dtype == np.float32
    assert a["joints"].shape == (17, 2) and a["joints_visible"].shape == (17,)
    ds[0], ds[5]                                          # access order does not matter
    b = _train_ds(coco_samples, codec)[2]                 # nor does a fresh dataset (another worker)
    for key in ("image", "target", "target_weight", "joints", "center", "scale"):
        np.testing.assert_array_equal(a[key], b[key])
    assert (a["rotation"], a["flipped"]) == (b["rotation"], b["flipped"])
    batch = torch.utils.data.default_collate([a, b])                  # the default DataLoader collate works
    assert batch["image"].shape == (2, 256, 192, 3) and batch["target_weight"].shape == (2, 17)
    ds.set_epoch(1)
    c = ds[2]
    assert not (np.array_equal(a["scale"], c["scale"]) and a["rotation"] == c["rotation"])


def test_train_targets_weights_and_peaks(coco_samples, codec):
    ds = _train_ds(coco_samples, codec)
    for i in range(len(coco_samples)):
        item = ds[i]
        w = item["target_weight"]
        assert set(np.unique(w)) <= {0.0, 1.0}
        assert (w <= item["joints_visible"]).all()                       # invisible -> weight 0
        assert (item["target"][w == 0] == 0).all()
        mu = np.floor(item["joints"] / 4 + 0.5)                           # official int(x / stride + 0.5)
        inside = (mu >= 0).all(1) & (mu < np.array([48, 64])).all(1) & (item["joints_visible"] > 0)
        assert (w[inside] == 1).all()
        for k in np.flatnonzero(inside):                      # peak at the rounded joint / stride 4
            y, x = np.unravel_index(item["target"][k].argmax(), (64, 48))
            assert (x, y) == tuple(mu[k])


def test_train_without_augmentation_maps_joints_with_the_crop_convention(coco_samples, codec):
    ds = _train_ds(coco_samples, codec, scale_factor=0.0, rot_factor=0.0, flip=False, half_body_prob=0.0)
    sample = coco_samples[0]
    item = ds[0]
    s = sample.scale[0] * 200 / INPUT[0]
    expected = (sample.joints - sample.center) / s + np.array(INPUT) / 2
    vis = sample.joints_visible > 0
    np.testing.assert_allclose(item["joints"][vis], expected[vis], atol=1e-3)
    np.testing.assert_array_equal(item["image"], TopDownDataset(coco_samples, input_size=INPUT,
                                                                     spec=COCO_17)[0]["image"])


def test_train_flip_mirrors_crop_and_swaps_joints(coco_samples, codec):
    base = _train_ds(coco_samples, codec, scale_factor=0.0, rot_factor=0.0, flip=False)[0]
    flipped = _train_ds(coco_samples, codec, scale_factor=0.0, rot_factor=0.0, flip_prob=1.0)[0]
    assert flipped["flipped"]
    perm = COCO_17.flip_permutation()
    vis = base["joints_visible"] > 0
    np.testing.assert_array_equal(flipped["joints_visible"], base["joints_visible"][perm])
    # Official convention: with x -> W-1-x and c -> W-1-c, crop column p shows unflipped column W_in - p.
    np.testing.assert_allclose(flipped["joints"][perm][vis, 0], INPUT[0] - base["joints"][vis, 0], atol=1e-3)
    np.testing.assert_allclose(flipped["joints"][perm][vis, 1], base["joints"][vis, 1], atol=1e-3)
    diff = np.abs(flipped["image"][:, 1:].astype(int) - base["image"][:, :0:-1].astype(int))
    assert diff.mean() < 1.0


def test_corrupt_image_raises_naming_the_file(coco_samples, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    sample = coco_samples[0]
    broken = type(sample)(**{**sample.__dict__, "image_path": str(bad)})
    with pytest.raises(DataError, match="bad.jpg"):
        TopDownDataset([broken], input_size=INPUT, spec=COCO_17)[0]


# ------------------------------------------------------------------------------------------------
# Malformed files
# ------------------------------------------------------------------------------------------------
def _coco_json(**overrides):
    data = {"images": [{"id": 1, "file_name": "000000000785.jpg", "width": 640, "height": 425}],
            "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
                             "bbox": [10, 20, 50, 80], "keypoints": [30, 40, 2] * 17}]}
    data.update(overrides)
    return data


def _write(tmp_path, obj, name="ann.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ({"annotations": []}, "no 'images'"),
    ({"images": []}, "no 'annotations'"),
    (_coco_json(annotations=[{"id": 10, "image_id": 1, "bbox": [1, 2, 3, 4], "keypoints": [1, 2, 2] * 16}]),
     "keypoints of length 48; expected 51"),
    (_coco_json(images=[{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}] * 2),
     "duplicate image id 1"),
    (_coco_json(annotations=[_coco_json()["annotations"][0]] * 2), "duplicate annotation id 10"),
    (_coco_json(annotations=[{"id": 10, "image_id": 1, "bbox": [1, 2, "x", 4], "keypoints": [1, 2, 2] * 17}]),
     "expected 4 finite numbers"),
    (_coco_json(images=[{"id": 1, "file_name": "000000000785.jpg"}]), "no numeric 'width'/'height'"),
])
def test_malformed_annotation_files_raise_one_line_errors(tmp_path, data_dir, content, fragment):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as err:
        load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)
    msg = str(err.value)
    assert "\n" not in msg and "ann.json" in msg and fragment in msg


def test_detection_file_without_person_boxes(tmp_path, data_dir):
    ann = _write(tmp_path, _coco_json())
    det = _write(tmp_path, [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9}],
                 "det.json")
    with pytest.raises(DataError, match=r"det\.json.*no person boxes"):
        load_coco_det_samples(det, ann, data_dir / "coco", input_size=INPUT)
    det = _write(tmp_path, {"image_id": 1}, "det.json")
    with pytest.raises(DataError, match=r"det\.json.*expected a list"):
        load_coco_det_samples(det, ann, data_dir / "coco", input_size=INPUT)


def test_bad_joint_coordinates_become_invisible(tmp_path, data_dir, caplog):
    kps = [30.0, 40.0, 2] * 17
    kps[0], kps[4] = -5.0, float("nan")
    path = _write(tmp_path, _coco_json(annotations=[{**_coco_json()["annotations"][0], "keypoints": kps}]))
    with caplog.at_level(logging.WARNING):
        (sample,) = load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)
    assert sample.joints_visible[:2].tolist() == [0.0, 0.0] and sample.joints_visible[2:].all()
    assert np.isfinite(sample.joints).all() and "2 labelled joint(s)" in caplog.text


def test_mpii_malformed_entries(tmp_path, data_dir):
    path = _write(tmp_path, [{"image": "005808361.jpg", "center": [1, 2], "scale": 1.0,
                              "joints": [[1, 2]] * 15, "joints_vis": [1] * 15}], "mpii.json")
    with pytest.raises(DataError, match=r"mpii\.json.*entry 0.*joints"):
        load_mpii_samples(path, data_dir / "mpii")
    path = _write(tmp_path, {"image": "x.jpg"}, "mpii.json")
    with pytest.raises(DataError, match=r"mpii\.json.*expected a list"):
        load_mpii_samples(path, data_dir / "mpii")


# ------------------------------------------------------------------------------------------------
# build_dataset from a config
# ------------------------------------------------------------------------------------------------
def _coco_cfg(data_dir, **test):
    cfg = get_default_config()
    cfg.DATASET.DATASET = "coco"
    cfg.MODEL.NUM_JOINTS = 17
    cfg.MODEL.IMAGE_SIZE = list(INPUT)
    cfg.MODEL.HEATMAP_SIZE = [48, 64]
    for split in ("TRAIN", "TEST"):
        cfg.DATASET[f"{split}_ANN_FILE"] = str(data_dir / "coco" / "test_coco.json")
        cfg.DATASET[f"{split}_IMAGE_DIR"] = str(data_dir / "coco")
    for key, value in test.items():
        cfg.TEST[key] = value
    return cfg


def test_build_dataset_from_config(data_dir, codec):
    cfg = _coco_cfg(data_dir, USE_GT_BBOX=True)
    assert len(build_dataset(cfg, "test")) == 12
    train = build_dataset(cfg, "train", codec)
    assert train.train and len(train) == 12 and train[0]["target"].shape == (17, 64, 48)
    det_cfg = _coco_cfg(data_dir, USE_GT_BBOX=False, IMAGE_THRE=0.0,
                        COCO_BBOX_FILE=str(data_dir / "coco" / "test_coco_det_AP_H_56.json"))
    assert len(build_dataset(det_cfg, "test")) == 118
    det_cfg.TEST.IMAGE_THRE = 0.1
    assert len(build_dataset(det_cfg, "test")) < 118

    mpii = get_default_config()
    mpii.DATASET.DATASET = "mpii"
    mpii.MODEL.NUM_JOINTS = 16
    mpii.DATASET.TEST_ANN_FILE = str(data_dir / "mpii" / "test_mpii.json")
    mpii.DATASET.TEST_IMAGE_DIR = str(data_dir / "mpii")
    ds = build_dataset(mpii, "test")
    assert len(ds) == 5 and ds.spec is MPII_16 and ds[0]["image"].shape == (256, 256, 3)


def test_gt_filtering_rules(tmp_path, data_dir, caplog):
    base = _coco_json()["annotations"][0]
    anns = [{**base, "id": 1},
            {**base, "id": 2, "iscrowd": 1},                       # crowd region
            {**base, "id": 3, "area": 0.0},                        # area <= 0
            {**base, "id": 4, "keypoints": [0, 0, 0] * 17},        # no keypoints
            {**base, "id": 5, "category_id": 2},                   # not a person
            {**base, "id": 6, "bbox": [700, 20, 50, 80]},          # empty once clipped to the image
            {**base, "id": 7, "image_id": 99},                     # image not listed
            {**base, "id": 8, "bbox": [-5, 400, 30, 40]}]          # clipped, kept
    path = _write(tmp_path, _coco_json(annotations=anns))
    with caplog.at_level(logging.WARNING):
        samples = load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)
    assert [s.ann_id for s in samples] == [1, 8]
    np.testing.assert_allclose(samples[0].bbox_xywh, [10, 20, 49, 79])
    # x1 = max(0, -5) = 0, x2 = min(639, 0 + 29); y2 = min(424, 400 + 39): clipped to the image
    np.testing.assert_allclose(samples[1].bbox_xywh, [0, 400, 29, 24])
    assert "image ids not in the 'images' list (first: 99)" in caplog.text


# ------------------------------------------------------------------------------------------------
# Degenerate boxes (issue 16): the box decides, skips are counted once per file, nothing degenerate
# reaches the dataset
# ------------------------------------------------------------------------------------------------
def _skip_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]


def test_gt_degenerate_boxes_are_skipped_with_one_counted_warning(tmp_path, data_dir, caplog):
    base = _coco_json()["annotations"][0]
    anns = [{**base, "id": 1},
            {**base, "id": 2, "bbox": [10, 10, -5, -5]},           # negative size, positive area
            {**base, "id": 3, "bbox": [10, 10, 0, 0]},             # zero size, positive area
            {**base, "id": 4, "bbox": [10, 10, 0.5, 0.5]},         # cleans to 0x0: a point window
            {**base, "id": 5, "bbox": [1e6, 1e6, 10, 10]},         # outside the image
            {**base, "id": 6, "area": 0.0},                        # the official area rule
            {**base, "id": 7, "bbox": [10, 10, 0.5, 40]}]          # 0 wide once cleaned: the window comes from h
    path = _write(tmp_path, _coco_json(annotations=anns))
    with caplog.at_level(logging.WARNING):
        samples = load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)
    assert [s.ann_id for s in samples] == [1, 7]
    assert _skip_warnings(caplog) == [f"skipped 5 annotations of '{path}': 3 zero-size boxes, "
                                      "1 box outside the image, 1 annotation with area <= 0"]
    assert all((s.scale > 0).all() for s in samples)


def test_gt_file_whose_every_box_is_unusable_is_an_error(tmp_path, data_dir, caplog):
    base = _coco_json()["annotations"][0]
    path = _write(tmp_path, _coco_json(annotations=[{**base, "id": 1, "bbox": [10, 10, 0, 0]},
                                                     {**base, "id": 2, "bbox": [1e6, 1e6, 10, 10]}]))
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as err:
        load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)
    assert str(err.value) == (f"annotation file '{path}': no usable person annotation; 2 of 2 skipped (1 zero-size "
                              "box, 1 box outside the image); expected boxes with w, h > 0 inside their image and "
                              "area > 0")
    assert not _skip_warnings(caplog)  # the error says it all: one line


def test_gt_area_must_be_a_number(tmp_path, data_dir):
    path = _write(tmp_path, _coco_json(annotations=[{**_coco_json()["annotations"][0], "area": "big"}]))
    with pytest.raises(DataError, match=r"ann\.json': annotation id 10 has area 'big'; expected a finite number"):
        load_coco_gt_samples(path, data_dir / "coco", input_size=INPUT)


def test_det_degenerate_boxes_are_skipped_with_one_counted_warning(tmp_path, data_dir, caplog):
    ann = _write(tmp_path, _coco_json())
    det = [{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9}
           for box in ([10, 10, 50, 80], [10, 10, 0, 0], [10, 10, -3, 5], [5000, 10, 50, 80],
                       [-1e30, -1e30, 2e30, 2e30], [-40, -40, 50, 80])]
    det_path = _write(tmp_path, det, "det.json")
    with caplog.at_level(logging.WARNING):
        samples = load_coco_det_samples(det_path, ann, data_dir / "coco", input_size=INPUT)
    assert [s.det_index for s in samples] == [0, 5]  # partly outside the image: kept, as given
    assert _skip_warnings(caplog) == [f"skipped 4 detections of '{det_path}': 2 zero-size boxes, "
                                      "1 box outside the image, 1 box too large"]
    # an image without a size: only the box itself can decide
    no_size = _write(tmp_path, _coco_json(images=[{"id": 1, "file_name": "000000000785.jpg"}]), "no_size.json")
    samples = load_coco_det_samples(det_path, no_size, data_dir / "coco", input_size=INPUT)
    assert [s.det_index for s in samples] == [0, 3, 5]


def test_det_file_whose_every_box_is_unusable_is_an_error(tmp_path, data_dir, caplog):
    ann = _write(tmp_path, _coco_json())
    det = _write(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [3, 3, 0, 9], "score": 0.9}] * 3, "det.json")
    with caplog.at_level(logging.WARNING), pytest.raises(DataError, match=r"det\.json': all 3 person boxes on "
                                                         r"images of .* are unusable \(3 zero-size boxes\)"):
        load_coco_det_samples(det, ann, data_dir / "coco", input_size=INPUT)
    assert not _skip_warnings(caplog)


def test_mpii_zero_scale_window_is_skipped_with_a_counted_warning(tmp_path, data_dir, caplog):
    entries = json.loads((data_dir / "mpii" / "test_mpii.json").read_text())
    entries[1]["scale"] = 0.0
    entries[3]["scale"] = -2.0
    path = _write(tmp_path, entries, "mpii.json")
    with caplog.at_level(logging.WARNING):
        samples = load_mpii_samples(path, data_dir / "mpii")
    assert len(samples) == len(entries) - 2
    assert _skip_warnings(caplog) == [f"skipped 2 annotations of '{path}': 2 zero-size boxes"]


@pytest.mark.parametrize("center, scale, problem", [
    ((50.0, 50.0), (0.0, 0.0), "1 zero-size box"),
    ((np.nan, 50.0), (1.0, 1.0), "1 non-finite box"),
    ((50.0, 50.0), (1e300, 1e300), "1 box too large"),
])
def test_dataset_refuses_a_sample_whose_window_cannot_be_cropped(coco_samples, codec, center, scale, problem):
    """Readers skip and count; a sample built by hand with a point window is refused, never trained on."""
    import dataclasses

    bad = dataclasses.replace(coco_samples[0], center=np.array(center), scale=np.array(scale))
    for train in (True, False):
        with pytest.raises(DataError, match=rf"1 of 3 person samples have unusable crop windows \({problem}; "
                                            r"first: image '.*000000000785\.jpg'"):
            TopDownDataset([coco_samples[1], bad, coco_samples[2]], input_size=INPUT, spec=COCO_17,
                           codec=codec, train=train)
