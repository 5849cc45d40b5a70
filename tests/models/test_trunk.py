"""HRNetTrunk on its own: every branch out, the official trunk names, the same numbers the heads see."""
import json

import numpy as np
import pytest
import torch

from pose.models import CLS_HRNET_ARCHS, HRNetTrunk, build_model_from_arch
from pose.models.hrnet import trunk_kwargs
from tests.conftest import reference_path


def test_bare_trunk_returns_every_branch_under_the_official_names():
    arch = CLS_HRNET_ARCHS["hrnet_w32"]
    with torch.device("meta"):
        trunk = HRNetTrunk(arch.stages, **trunk_kwargs(arch))
        branches = trunk(torch.zeros(2, 3, 256, 192))
    assert [tuple(b.shape) for b in branches] == [(2, 32, 64, 48), (2, 64, 32, 24), (2, 128, 16, 12),
                                                  (2, 256, 8, 6)]
    assert trunk.branch_channels == (32, 64, 128, 256) and trunk.size_divisor == 32
    official = json.loads(reference_path("hrnet_cls_w32_state_dict_keys.json").read_text())
    head = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
    assert [[n, list(t.shape)] for n, t in trunk.state_dict().items()] == \
        [[n, s] for n, s in official if not n.startswith(head)]


def test_heads_read_the_trunk_they_inherit(rng):
    torch.manual_seed(0)
    classifier = build_model_from_arch("hrnet_tiny", head="classification").eval()
    trunk = HRNetTrunk(classifier.stage_specs, stage1=classifier.stage1_spec).eval()
    missing, unexpected = trunk.load_state_dict(classifier.state_dict(), strict=False)
    assert not missing and all(k.startswith(("incre", "downsamp", "final_layer", "classifier"))
                               for k in unexpected)
    x = torch.from_numpy(rng.uniform(0, 255, (1, 3, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        for ours, theirs in zip(trunk(x), classifier.forward_features(classifier_input(classifier, x))):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def classifier_input(model, images):
    return (images - model.pixel_mean) / model.pixel_std


@pytest.mark.parametrize("head,single", [("v1", True), ("v2", False), ("v2p", False),
                                         ("classification", False)])
def test_only_v1_drops_the_lower_branches_of_the_last_module(head, single):
    with torch.device("meta"):
        model = build_model_from_arch("hrnet_w32", 3, head=head)  # 3 modules in stage 4
    assert model.multi_scale_output is not single
    assert len(model.stage4[-1].fuse_layers) == (1 if single else 4)
    assert len(model.stage4) == 3 and all(m.multi_scale_output for m in list(model.stage4)[:-1])
