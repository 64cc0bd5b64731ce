"""Whether two splat scenes show the same picture (importable from every test folder, like cli_helpers):
`psnr(a, b)` is `neuralframe.render.splat.compare.render_psnr` at the tests' 160x120."""

from __future__ import annotations

from neuralframe.render.splat.compare import render_psnr as psnr

__all__ = ["psnr"]
