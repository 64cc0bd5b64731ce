"""Scene files: `load` and `save` over every format in `neuralframe.render.splat.formats`
(.ply, .splat, .spz, ...), chosen by extension. Kept as the short import path for callers."""

from neuralframe.render.splat.formats import FORMATS, format_for, load, save, suffixes

__all__ = ["FORMATS", "format_for", "load", "save", "suffixes"]
