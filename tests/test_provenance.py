"""Provenance: which machine a wall time was measured on, and which times compare."""
import os

import pytest

from liouna_snn import provenance
from liouna_snn.provenance import cpu_name, machine, machine_name, same_machine

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 {extra}

processor\t: 1
model name\t: AMD EPYC 9B14
"""


@pytest.mark.parametrize("extra, extension", [("", "avx512_bf16"), ("amx_bf16 amx_tile", "amx_bf16")])
def test_the_cpu_is_named_by_model_fastest_extension_and_cores(extra, extension):
    assert cpu_name(CPUINFO.format(extra=extra)) == f"AMD EPYC 9B14, {extension}, {CORES} cores"


def test_a_cpu_without_a_listed_extension_is_named_by_model_and_cores():
    assert cpu_name("model name\t: Old CPU\nflags\t: fpu sse2\n") == f"Old CPU, {CORES} cores"


def test_the_machine_record_names_the_gpu_on_a_cuda_device(monkeypatch):
    monkeypatch.setattr(provenance, "cpu_name", lambda: "AMD EPYC, avx2, 2 cores")
    monkeypatch.setattr(provenance.torch.cuda, "get_device_name", lambda device: f"H100 ({device})")
    assert machine("cpu") == {"device": "cpu", "cpu": "AMD EPYC, avx2, 2 cores", "threads": provenance.torch.get_num_threads()}
    gpu = machine("cuda:0")
    assert gpu["gpu"] == "H100 (cuda:0)" and gpu["device"] == "cuda:0"
    assert machine_name(gpu) == f"cuda H100 (cuda:0) (AMD EPYC, avx2, 2 cores), {gpu['threads']} threads"


def test_times_compare_only_within_one_machine():
    here = {"device": "cpu", "cpu": "AMD EPYC, avx512_bf16, 2 cores", "threads": 2}
    old = {"device": "cpu", "cpu": "x86_64", "threads": 2}  # written before the CPU was named
    assert same_machine(here, dict(here))
    assert same_machine(old, {"device": "cpu", "threads": 2})  # unnamed CPUs compare with each other only
    assert not same_machine(here, old)
    assert not same_machine(here, {**here, "cpu": "AMD EPYC, avx2, 2 cores"})
    assert not same_machine(here, {**here, "threads": 1})
    assert not same_machine({**here, "device": "cuda:0", "gpu": "H100"}, {**here, "device": "cuda:0", "gpu": "A100"})
    assert same_machine({**here, "device": "cuda", "gpu": "H100"}, {**here, "device": "cuda:0", "gpu": "H100"})
    assert machine_name(old) == "cpu (CPU not recorded), 2 threads"


def test_a_commit_is_marked_dirty_only_while_code_differs_from_it(tmp_path, monkeypatch):
    import subprocess

    from liouna_snn import provenance

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    for name, text in [("pkg/code.py", "x = 1\n"), ("exp.toml", "a = 1\n"), ("results.json", "{}\n")]:
        (repo / name).write_text(text)
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(provenance, "__file__", str(repo / "pkg" / "provenance.py"))
    sha = provenance.git_commit()
    assert len(sha) == 40 and not sha.endswith("+dirty")
    (repo / "results.json").write_text('{"a": 1}\n')   # results a run writes do not count
    assert provenance.git_commit() == sha
    (repo / "exp.toml").write_text("a = 2\n")          # an experiment definition does
    assert provenance.git_commit() == sha + "+dirty"
    assert provenance.short_commit(sha + "+dirty") == sha[:10] + "+dirty"
    assert provenance.short_commit(sha) == sha[:10] and provenance.short_commit(None) == ""
