"""Where and from what a result was computed: the source commit and the machine.

Wall times compare only between runs of one machine: :func:`machine` names it (device, CPU model and its
fastest matrix/vector extension, cores, torch threads), so a results file says which times belong together.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

# x86 extensions that set a CPU's matmul speed, fastest first (Linux /proc/cpuinfo flag names)
_SPEED_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


DIRTY = "+dirty"


def git_commit() -> str | None:
    """The commit of this package's checkout, or ``None`` outside a git checkout; ``<sha>+dirty`` when a tracked
    Python or TOML file (code, experiment definitions, model specs) differs from that commit, so a result records
    that it did not come from the commit's code alone. Results, figures and prose do not count."""
    here = Path(__file__).parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                             cwd=here).stdout.strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "*.py", "*.toml"], cwd=top).returncode
    except (OSError, subprocess.CalledProcessError):
        changed = 0
    return sha + DIRTY if changed == 1 else sha


def short_commit(commit: str | None) -> str:
    """The first 10 hex digits of a recorded commit, keeping a ``+dirty`` mark; ``""`` for none."""
    commit = commit or ""
    return commit[:10] + (DIRTY if commit.endswith(DIRTY) else "")


@functools.lru_cache(maxsize=None)
def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU as ``"<model name>, <fastest extension>, <n> cores"``, e.g. ``"AMD EPYC, avx512_bf16, 2 cores"``
    (``n``: the cores this process may run on).

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (read when ``None``); where there is none (not Linux), the
    model is :func:`platform.processor` (or the architecture) and the extension is left out."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())  # x86 / ARM
    extension = next((f for f in _SPEED_FLAGS if f in flags), None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ", ".join(filter(None, (model, extension, f"{cores} cores")))


def machine(device: torch.device | str) -> dict:
    """``{"device", "cpu", "threads"}`` (and ``"gpu"``, its name, on a CUDA device): what a wall time ran on."""
    device = torch.device(device)
    record = {"device": str(device), "cpu": cpu_name(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def named_cpu(record: dict) -> str | None:
    """The ``cpu`` of a record (results or run) as :func:`cpu_name` wrote it; ``None`` for records written
    before (which hold only the architecture, e.g. ``"x86_64"``, or nothing)."""
    cpu = record.get("cpu") or ""
    return cpu if cpu.endswith(" cores") else None


def machine_key(record: dict) -> tuple:
    """What a record's wall time depends on: ``(device type, CPU, GPU, threads)``."""
    device = record.get("device")
    return (torch.device(device).type if device else None), named_cpu(record), record.get("gpu"), record.get("threads")


def machine_name(record: dict) -> str:
    """:func:`machine_key` in words, e.g. ``"cpu (AMD EPYC, avx2, 2 cores), 2 threads"``."""
    device, cpu, gpu, threads = machine_key(record)
    return (f"{device or '?'}" + (f" {gpu}" if gpu else "") + f" ({cpu or 'CPU not recorded'}), "
            f"{threads if threads is not None else '?'} threads")


def same_machine(a: dict, b: dict) -> bool:
    """Whether two records (results or runs, with :func:`machine`'s keys) ran on one machine, so that their wall
    times compare (:func:`machine_key`). Records written before the CPU was named compare only with each
    other."""
    return machine_key(a) == machine_key(b)
