"""`neuralframe bench data`: how fast the procedural captioned data generates, in one process (one thread).

Images per second at 64x64 and 128x128 and 8-frame videos per second at 64x64, each the best of a few
timed rounds of consecutive seeds (photographs decoded beforehand, as a training run would have them
after its first few samples), plus the mix of backgrounds the rounds drew. Checks: absolute floors (`FLOORS`)
a tenth of what 2 cores measure (benchmarks/data.json), so that data generation never becomes what a
training run waits on.
"""

from __future__ import annotations

import os
import time
from typing import Callable


# what training needs at the least (a batch of 32 images a step at a few steps a second, one thread)
FLOORS = {"images_per_s_64": 200.0, "images_per_s_128": 100.0, "videos_per_s_64x8": 50.0}


def _rate(make: Callable[[int], object], n: int, rounds: int) -> float:
    best = float("inf")
    for r in range(rounds):
        start = time.perf_counter()
        for seed in range(r * n, (r + 1) * n):
            make(seed)
        best = min(best, time.perf_counter() - start)
    return n / best


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark and return its JSON-serialisable result (see the module docstring)."""
    from neuralframe.generate.data import PHOTOS, ShapesConfig, ShapesGenerator

    say = progress or (lambda message: None)
    n, rounds = (200, 2) if quick else (2000, 3)
    result: dict = {"load_average_start": os.getloadavg()[0]}
    for size in (64, 128):
        gen = ShapesGenerator(ShapesConfig(size=size))
        for name in PHOTOS:
            gen.photos.pyramid(name)
        say(f"images {size}x{size}")
        result[f"images_per_s_{size}"] = round(_rate(gen.image, n, rounds), 1)
    gen = ShapesGenerator(ShapesConfig(size=64, frames=8))
    say("videos 8x64x64")
    result["videos_per_s_64x8"] = round(_rate(gen.video, max(n // 8, 20), rounds), 1)
    result["load_average_end"] = os.getloadavg()[0]
    result["checks"] = {f"{name}_ge_{floor:g}": result[name] >= floor for name, floor in FLOORS.items()}
    return result


if __name__ == "__main__":  # pragma: no cover - the CLI would be `neuralframe bench data --json`
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv, progress=lambda m: print(m, file=sys.stderr))))


def print_summary(result: dict) -> None:
    """`result` as `neuralframe bench data` prints it: the whole of it, as highlighted JSON."""
    import json

    from neuralframe.console import console

    console.print_json(json.dumps(result))
