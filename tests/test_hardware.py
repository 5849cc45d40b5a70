"""bf16 units: read from /proc/cpuinfo, and the reason is said either way."""
from pathlib import Path

import pytest

from pose.hardware import bf16_support, cpu_bf16_units, cpu_flags, cpu_model

ZEN4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
SKYLAKE = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
SPR = "processor\t: 0\nflags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_flags_are_read_from_the_flags_line():
    assert {"avx512_bf16", "avx2"} <= cpu_flags(ZEN4)
    assert cpu_flags("no flags here") == frozenset()


def test_model_name_is_read_for_the_benchmark_header():
    assert cpu_model(ZEN4) == "AMD EPYC 9R14"
    assert cpu_model(SKYLAKE) == "unknown"


@pytest.mark.parametrize("text, units", [(ZEN4, ("avx512_bf16",)), (SKYLAKE, ()), (SPR, ("avx512_bf16", "amx_bf16"))])
def test_bf16_units(text, units):
    assert cpu_bf16_units(text) == units


def test_bf16_support_says_why():
    ok, why = bf16_support("cpu", ZEN4)
    assert ok and "avx512_bf16" in why
    ok, why = bf16_support("cpu", SKYLAKE)
    assert not ok and "no bf16 units" in why and "avx512_bf16" in why


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file() or "avx512_bf16" not in Path("/proc/cpuinfo").read_text(),
                    reason="this CPU has no avx512_bf16")
def test_this_machine_has_bf16_units():
    assert bf16_support("cpu")[0]
