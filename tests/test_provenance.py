"""Provenance: which machine a wall time was measured on, and which times compare."""
import os

import pytest

from liouna_snn.provenance import cpu_name, machine, same_machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 {extra}

processor\t: 1
model name\t: AMD EPYC 9B14
"""


@pytest.mark.parametrize("extra, extension", [("", "avx512_bf16"), ("amx_bf16 amx_tile", "amx_bf16")])
def test_the_cpu_is_named_by_model_fastest_extension_and_cores(extra, extension):
    assert cpu_name(CPUINFO.format(extra=extra)) == f"AMD EPYC 9B14, {extension}, {os.cpu_count()} cores"


def test_a_cpu_without_a_listed_extension_is_named_by_model_and_cores():
    assert cpu_name("model name\t: Old CPU\nflags\t: fpu sse2\n") == f"Old CPU, {os.cpu_count()} cores"


def test_the_machine_record_has_device_cpu_and_threads():
    record = machine("cpu")
    assert record["device"] == "cpu" and record["cpu"] == cpu_name() and record["threads"] >= 1
    assert "gpu" not in record


def test_times_compare_only_within_one_machine():
    here = {"device": "cpu", "cpu": "AMD EPYC, avx512_bf16, 2 cores", "threads": 2}
    old = {"device": "cpu", "cpu": "x86_64", "threads": 2}  # written before the CPU was named
    assert same_machine(here, dict(here))
    assert same_machine(old, {"device": "cpu", "threads": 2})  # unnamed CPUs compare with each other only
    assert not same_machine(here, old)
    assert not same_machine(here, {**here, "cpu": "AMD EPYC, avx2, 2 cores"})
    assert not same_machine(here, {**here, "threads": 1})
    assert not same_machine({**here, "device": "cuda:0", "gpu": "H100"}, {**here, "device": "cuda:0", "gpu": "A100"})
