"""What the machine offers for reduced precision: bf16 dot-product units on the CPU, bf16 on a GPU.

bf16 pays only where the hardware has bf16 arithmetic: on x86 the ``avx512_bf16`` dot-product
instructions (AMD Zen 4+, Intel Cooper Lake / Sapphire Rapids+) or Intel AMX (``amx_bf16``); on a CPU
without them oneDNN emulates bf16 and is many times slower than fp32 (48x measured on an earlier host).
So bf16 is offered only where :func:`bf16_support` finds such units and is otherwise a one-line error.

Linux reads ``/proc/cpuinfo``; elsewhere no CPU bf16 units are assumed (the safe answer).
"""
from pathlib import Path
from typing import Optional, Tuple

#: CPU flags (as /proc/cpuinfo spells them) that mean native bf16 arithmetic.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(keys: Tuple[str, ...], cpuinfo_text: Optional[str]) -> Optional[str]:
    """The value of the first ``/proc/cpuinfo`` line whose key is one of ``keys`` (None: none, unreadable)."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = _CPUINFO.read_text()
        except OSError:
            return None
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo_text: Optional[str] = None) -> frozenset:
    """The CPU feature flags of the first processor in ``/proc/cpuinfo`` (empty where unreadable)."""
    return frozenset((_cpuinfo_field(("flags", "Features"), cpuinfo_text) or "").split())


def cpu_model(cpuinfo_text: Optional[str] = None) -> str:
    """The first processor's model name from ``/proc/cpuinfo`` ("unknown" where it does not say)."""
    return _cpuinfo_field(("model name",), cpuinfo_text) or "unknown"


def cpu_bf16_units(cpuinfo_text: Optional[str] = None) -> Tuple[str, ...]:
    """The bf16 flags this CPU has, of :data:`CPU_BF16_FLAGS` (empty tuple: none)."""
    flags = cpu_flags(cpuinfo_text)
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


def bf16_support(device="cpu", cpuinfo_text: Optional[str] = None) -> Tuple[bool, str]:
    """Whether bf16 inference pays on ``device``, and why (a phrase for messages and ``describe()``)."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, f"GPU {torch.cuda.get_device_name(torch.device(device))} supports bf16"
        return False, "this GPU has no bf16 support"
    units = cpu_bf16_units(cpuinfo_text)
    if units:
        return True, f"CPU bf16 units found: {', '.join(units)}"
    return False, (f"this CPU has no bf16 units (none of {', '.join(CPU_BF16_FLAGS)} in /proc/cpuinfo), "
                   "so bf16 would be emulated and slower than fp32")
