"""Peak memory of one ``correct_photo`` call, measured in a process of its own.

Run as ``python bench/memory_probe.py IMAGE FORMAT BIT_DEPTH {rss,tracemalloc}``; prints one JSON
object. ``rss`` reports how far the process's peak resident set (``VmHWM``) rose above its
resident set just before the call (the peak is reset first through ``/proc/self/clear_refs`` where
the kernel allows it; otherwise the baseline is the peak so far). ``tracemalloc`` reports the peak
of Python-tracked allocations during the call, which includes NumPy arrays but not OpenCV's own
buffers. The two are measured in separate processes because tracing slows the call down and
holds its own memory.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path
from typing import Literal, cast

from chromaline.engine.correct import correct_photo
from chromaline.engine.encode import OutputFormat

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_rss(data: bytes, output_format: OutputFormat, bit_depth: Literal[8, 16]) -> dict[str, float]:
    baseline_kib = _status_kib("VmRSS") if _reset_peak() else _status_kib("VmHWM")
    correct_photo(data, output_format=output_format, bit_depth=bit_depth)
    peak_kib = _status_kib("VmHWM")
    return {"rss_delta_mib": (peak_kib - baseline_kib) / 1024, "rss_peak_mib": peak_kib / 1024}


def measure_tracemalloc(
    data: bytes, output_format: OutputFormat, bit_depth: Literal[8, 16]
) -> dict[str, float]:
    tracemalloc.start()
    correct_photo(data, output_format=output_format, bit_depth=bit_depth)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"tracemalloc_peak_mib": peak / MIB}


def main(arguments: list[str]) -> None:
    image, output_format, bit_depth, kind = arguments
    data = Path(image).read_bytes()
    depth = cast(Literal[8, 16], int(bit_depth))
    fmt = cast(OutputFormat, output_format)
    result = measure_rss(data, fmt, depth) if kind == "rss" else measure_tracemalloc(data, fmt, depth)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
