"""The machine a result was made on, as far as it changes the numbers."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model and widest vector instructions, e.g. "AMD EPYC, AVX-512".

    TensorFlow's CPU kernels take other code paths on AVX-512 than on AVX2, whose sums round
    differently: a model trained on one differs in the last digits from one trained on the
    other, and training amplifies it. The same CPU kind, seed and data give the same bytes."""
    try:
        info = cpuinfo.read_text()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^flags\s*:(.*)$", info, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    isa = next(
        (
            name
            for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
            if flag in flags
        ),
        "no AVX",
    )
    return f"{model.group(1).strip() if model else platform.machine()}, {isa}"
