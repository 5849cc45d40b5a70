"""Losses and training accuracy against the official JointsMSELoss / OHKM / accuracy golden values."""
import numpy as np
import pytest
import torch

from pose.losses import JointsMSELoss, heatmap_accuracy, joints_mse_loss, joints_ohkm_mse_loss


@pytest.fixture(scope="module")
def tf(golden):
    return golden("golden_transforms_seed0.npz")


def _loss_inputs(tf):
    return (torch.from_numpy(tf["loss_output"]), torch.from_numpy(tf["loss_target"]),
            torch.from_numpy(tf["loss_target_weight"]))


def test_mse_with_target_weight_matches_official(tf):
    out, tgt, tw = _loss_inputs(tf)
    assert joints_mse_loss(out, tgt, tw).item() == pytest.approx(float(tf["loss_mse_tw"]), abs=1e-6)
    # (B, K) weights give the same value as the official (B, K, 1).
    assert joints_mse_loss(out, tgt, tw[..., 0]).item() == pytest.approx(float(tf["loss_mse_tw"]), abs=1e-6)


def test_mse_without_target_weight_matches_official(tf):
    out, tgt, tw = _loss_inputs(tf)
    got = joints_mse_loss(out, tgt, tw, use_target_weight=False).item()
    assert got == pytest.approx(float(tf["loss_mse_notw"]), abs=1e-6)


def test_ohkm_matches_official(tf):
    out, tgt, tw = _loss_inputs(tf)
    expected = pytest.approx(float(tf["loss_ohkm8_tw"]), abs=1e-6)
    assert joints_ohkm_mse_loss(out, tgt, tw, topk=8).item() == expected
    assert JointsMSELoss(use_ohkm=True)(out, tgt, tw).item() == expected


def test_mse_batch_of_one_matches_official(tf):
    out, tgt, tw = _loss_inputs(tf)
    got = JointsMSELoss()(out[:1], tgt[:1], tw[:1]).item()
    assert got == pytest.approx(float(tf["loss_mse_tw_b1"]), abs=1e-6)


def test_zero_loss_on_identical_maps_and_masked_joints_contribute_nothing(rng):
    pred = torch.from_numpy(rng.random((2, 5, 8, 6), dtype=np.float32))
    target = pred.clone()
    w = torch.ones(2, 5)
    assert joints_mse_loss(pred, target, w).item() == 0.0
    target[1, 3] += 7.0                                 # corrupt a joint ...
    w[1, 3] = 0.0                                       # ... whose weight is 0
    assert joints_mse_loss(pred, target, w).item() == 0.0
    assert joints_ohkm_mse_loss(pred, target, w, topk=2).item() == 0.0
    assert joints_mse_loss(pred, target, w, use_target_weight=False).item() > 0.0


def test_weight_enters_squared():
    pred = torch.ones(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert joints_mse_loss(pred, target, torch.tensor([[2.0]])).item() == pytest.approx(0.5 * 4.0)


def test_loss_is_differentiable(rng):
    pred = torch.from_numpy(rng.random((2, 3, 4, 4), dtype=np.float32)).requires_grad_()
    joints_mse_loss(pred, torch.zeros_like(pred), torch.ones(2, 3)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_accuracy_matches_official(tf):
    acc, avg, cnt, pred = heatmap_accuracy(tf["acc_output"], tf["acc_target"])
    np.testing.assert_allclose(acc, tf["acc_per_joint"], atol=1e-6)
    assert avg == pytest.approx(float(tf["acc_avg"]), abs=1e-6)
    assert cnt == int(tf["acc_cnt"])
    np.testing.assert_array_equal(pred, tf["acc_pred"])
    # torch input gives the same answer
    acc_t, *_ = heatmap_accuracy(torch.from_numpy(tf["acc_output"]), torch.from_numpy(tf["acc_target"]))
    np.testing.assert_array_equal(acc_t, acc)


def test_accuracy_without_valid_joints_is_minus_one():
    zeros = np.zeros((2, 3, 8, 6), dtype=np.float32)
    acc, avg, cnt, _ = heatmap_accuracy(zeros, zeros)
    assert cnt == 0 and avg == 0.0
    np.testing.assert_array_equal(acc, [0.0, -1.0, -1.0, -1.0])
