"""Where the bundled files live: `asset("models", "tiny-shapes")` is `<checkout>/assets/models/tiny-shapes`.

The assets sit beside the package in a checkout or an editable install (`make demo` installs so); this is
the one place that knows it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "assets"


def asset(*parts: str) -> Path:
    """The path of a bundled file or folder under `assets/` (it may not exist: callers check)."""
    return ROOT.joinpath(*parts)
