"""Run ``twostream_das`` under ``torchrun`` (gloo, CPU) as a subprocess, for the multi-process
tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence


def torchrun(
    args: Sequence[str], nproc: int = 2, timeout: float = 120, threads: str = "1"
) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node NPROC -m twostream_das ARGS...`` with
    ``OMP_NUM_THREADS=threads`` and no launcher variables inherited: the finished process,
    output captured as text."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = threads
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
        str(nproc), "-m", "twostream_das", *map(str, args),
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
