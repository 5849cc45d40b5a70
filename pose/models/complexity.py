"""Parameter and multiply-add (MAC) counts, and a per-module summary table.

What is counted, exactly (forward hooks on one forward pass; the same totals as the official
``get_model_summary`` of both HRNet repos, ``lib/utils/modelsummary.py`` / ``lib/utils/utils.py``):

- ``nn.Conv2d``: output elements x (C_in / groups) x kh x kw. For batch 1 this is the official
  ``prod(weight.shape) * prod(output.shape[2:])``. The conv bias adds nothing;
- ``nn.ConvTranspose2d``: input elements x (C_out / groups) x kh x kw;
- ``nn.Linear``: rows x in_features x out_features (official ``prod(output.shape) * in_features``);
- nothing else: BatchNorm, ReLU, additions, upsampling / interpolation, pooling and concatenation cost 0.

Parameters are ``numel`` of ``model.parameters()`` (buffers such as BN running statistics excluded).
The official READMEs' "GFLOPs" column is these MACs divided by 2**30 (``macs_to_readme_gflops``), not
FLOPs: pose W32 256x192 is 7,645,003,776 MACs = 7.12 "GFLOPs"; classifier W18-small-v1 and W32 at 224x224
are 1,601,508,352 and 8,921,133,056 MACs = 1.49 and 8.31 "GFLOPs".

The counting forward runs in eval mode under ``torch.inference_mode`` on the model's own device, so a
model built on the ``meta`` device (``with torch.device("meta"): model = ...``) is counted instantly
without allocating weights.
"""
from collections import OrderedDict
from typing import Dict, Sequence

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _module_macs(module: nn.Module, inputs, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        rows = output.numel() // module.out_features
        return rows * module.in_features * module.out_features
    return 0


def macs_by_module(model: nn.Module, input_size: Sequence[int], batch: int = 1) -> Dict[str, int]:
    """MACs of one forward of a (batch, 3, H, W) input, per top-level child module (in registration order).

    Args:
        model: called as ``model(images)``; its first parameter decides device and dtype.
        input_size: ``(W, H)`` of the input.
        batch: batch size; the counts are for the whole batch.
    """
    w, h = (int(v) for v in input_size)
    owner = {}
    totals: Dict[str, int] = OrderedDict()
    for name, child in model.named_children():
        totals[name] = 0
        for sub in child.modules():
            owner.setdefault(id(sub), name)
    totals.setdefault("", 0)  # convs registered directly on the model (not inside a child)

    def hook(module, inputs, output):
        totals[owner.get(id(module), "")] += _module_macs(module, inputs, output)

    counted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(batch, 3, h, w, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if totals[""] == 0:
        del totals[""]
    return dict(totals)


def count_macs(model: nn.Module, input_size: Sequence[int], batch: int = 1) -> int:
    """Total MACs of one forward of a (batch, 3, H, W) input, ``input_size`` = ``(W, H)``."""
    return sum(macs_by_module(model, input_size, batch).values())


def macs_to_readme_gflops(macs: int) -> float:
    """MACs in the unit of the official READMEs' "GFLOPs" column: ``macs / 2**30`` (unrounded)."""
    return macs / 2 ** 30


def model_summary(model: nn.Module, input_size: Sequence[int]) -> str:
    """A text table of parameters and MACs (batch 1) per top-level module, with totals."""
    macs = macs_by_module(model, input_size, batch=1)
    params = OrderedDict((name, count_parameters(child)) for name, child in model.named_children())
    names = list(OrderedDict.fromkeys(list(params) + list(macs)))
    total_params = count_parameters(model)
    total_macs = sum(macs.values())
    w, h = (int(v) for v in input_size)
    width = max([len(n) for n in names] + [len("total")])
    lines = [f"input (W, H) = ({w}, {h}), batch 1",
             f"{'module':<{width}}  {'params':>12}  {'MACs (1e6)':>12}  {'MACs %':>7}"]
    for name in names:
        m = macs.get(name, 0)
        share = 100.0 * m / total_macs if total_macs else 0.0
        lines.append(f"{name:<{width}}  {params.get(name, 0):>12,}  {m / 1e6:>12.1f}  {share:>6.1f}%")
    lines.append(f"{'total':<{width}}  {total_params:>12,}  {total_macs / 1e6:>12.1f}  {100.0:>6.1f}%")
    lines.append(f"{total_macs / 1e9:.3f} GMACs = {total_macs / 2 ** 30:.3f} GMACs/2^30 "
                 "(the official README's 'GFLOPs')")
    return "\n".join(lines)
