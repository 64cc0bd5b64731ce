"""Shape checks for public boundaries, with errors a user can read (kornia's `KORNIA_CHECK_SHAPE`).

    check_shape(x, ["N", 3], "x")                  # InputError: x must have shape [N, 3], got [5, 2]
    sizes = check_shape(rays_o, ["R", 3], "rays_o")          # {"R": 1024}
    check_shape(t_min, ["R"], "t_min", sizes)      # t_min must have shape [R] (R=1024), got [1000]
    check_shape(c2w, [[4, 4], [3, 4]], "c2w")      # c2w must have shape [4, 4] or [3, 4], got [2, 2]

An int axis must have exactly that size; a named axis ("N", "H") takes any size, the same one wherever
the name comes back: in the same tensor, and in later checks that are handed the `sizes` of earlier ones.
Importing this module loads nothing heavy.
"""

from __future__ import annotations

from typing import Any, Sequence

from neuralframe.errors import InputError

Dims = Sequence[int | str]


def _spec(dims: Dims) -> str:
    return f"[{', '.join(str(d) for d in dims)}]"


def _matches(shape: tuple[int, ...], dims: Dims, sizes: dict[str, int]) -> dict[str, int] | None:
    """The named sizes with this shape's bound in, or None when the shape does not fit `dims`."""
    if len(shape) != len(dims):
        return None
    bound = dict(sizes)
    for want, got in zip(dims, shape):
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                return None
        elif want != got:
            return None
    return bound


def check_shape(x: Any, dims: Dims | Sequence[Dims], name: str = "x", sizes: dict[str, int] | None = None, *,
                what: str | None = None, dtype: Any = None) -> dict[str, int]:
    """Raise an InputError unless `x` is a tensor of shape `dims` (or of one of several `dims`).

    Args:
        x: the tensor to check.
        dims: one shape, e.g. ["N", 3], or a list of alternatives, e.g. [[4, 4], [3, 4]].
        name: how the message names `x` ("x", "camera viewmat", "Gaussians.means").
        sizes: named sizes bound by earlier checks; the ones this check binds are added to a copy.
        what: says what `x` is, for the message ("background must be an RGB colour of shape [3], ...").
        dtype: the torch dtype `x` must have (None: any).

    Returns:
        The named sizes: `sizes` and the names this shape bound.
    """
    import torch

    sizes = dict(sizes or {})
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    options = list(dims) if dims and not isinstance(dims[0], (int, str)) else [dims]
    shape = tuple(x.shape)
    for option in options:
        bound = _matches(shape, option, sizes)
        if bound is not None:
            break
    else:
        known = sorted({d for option in options for d in option if isinstance(d, str) and d in sizes})
        given = f" ({', '.join(f'{d}={sizes[d]}' for d in known)})" if known else ""
        spec = " or ".join(_spec(option) for option in options)
        must = f"be {what} of shape" if what else "have shape"
        raise InputError(f"{name} must {must} {spec}{given}, got {list(shape)}")
    if dtype is not None and x.dtype != dtype:
        raise InputError(f"{name} must be {str(dtype).removeprefix('torch.')}, got {x.dtype}")
    return bound
