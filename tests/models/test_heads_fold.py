"""Every head keeps the conv -> BN patterns pose.backends folds (conv-BN-ReLU as nn.Sequential, residual
blocks with conv1/bn1...), so BN folding of a V2, V2p or classification network changes no output."""
import pytest
import torch

from pose.backends import fold_batchnorm
from pose.models import build_model_from_arch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_batchnorms(model: torch.nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.weight.data = torch.rand(n, generator=generator) + 0.5
            module.bias.data = torch.rand(n, generator=generator) * 0.4 - 0.2
            module.running_mean = torch.randn(n, generator=generator) * 0.2
            module.running_var = torch.rand(n, generator=generator) + 0.5


def _flat(output):
    return torch.cat([t.flatten() for t in output.values()]) if isinstance(output, dict) else output.flatten()


@pytest.mark.parametrize("head", ["v2", "v2p", "classification"])
def test_batchnorm_folding_of_every_head(head):
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model_from_arch("hrnet_tiny", 5, head=head).eval()
    _randomise_batchnorms(model, generator)
    x = torch.randn(2, 3, 64, 64, generator=generator)
    folded = fold_batchnorm(model)
    left = [name for name, m in folded.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # Only the stem may be left: pose.backends recognises conv1/bn1, conv2/bn2 on PoseHRNet only (V1).
    assert set(left) <= {"bn1", "bn2"}, left
    with torch.inference_mode():
        torch.testing.assert_close(_flat(folded(x)), _flat(model(x)), atol=2e-4, rtol=1e-4)
