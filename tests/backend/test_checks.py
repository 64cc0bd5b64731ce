"""Shape checks at public boundaries: readable messages, named sizes that must agree."""

import pytest
import torch

from neuralframe.backend.checks import check_shape
from neuralframe.errors import InputError


def test_a_fitting_shape_passes_and_binds_its_names():
    assert check_shape(torch.zeros(5, 3), ["N", 3]) == {"N": 5}
    sizes = check_shape(torch.zeros(2, 4, 3), ["N", "K", 3], "sh", {"N": 2})
    assert sizes == {"N": 2, "K": 4}
    assert check_shape(torch.zeros(3, 4), [[4, 4], [3, 4]], "c2w") == {}


@pytest.mark.parametrize("x, dims, kwargs, message", [
    (torch.zeros(5, 2), ["N", 3], {}, "x must have shape [N, 3], got [5, 2]"),
    (torch.zeros(5), ["N", 3], {"name": "points"}, "points must have shape [N, 3], got [5]"),
    (torch.zeros(4), ["R"], {"name": "t_min", "sizes": {"R": 6}}, "t_min must have shape [R] (R=6), got [4]"),
    (torch.zeros(2, 2), [[4, 4], [3, 4]], {"name": "c2w"}, "c2w must have shape [4, 4] or [3, 4], got [2, 2]"),
    (torch.zeros(4), [3], {"name": "background", "what": "an RGB colour"},
     "background must be an RGB colour of shape [3], got [4]"),
    (torch.zeros(4, 4, 5), ["G", "G", "G"], {"name": "occupancy"}, "occupancy must have shape [G, G, G], got [4, 4, 5]"),
    (torch.zeros(5, 3, dtype=torch.float64), ["N", 3], {"dtype": torch.float32}, "x must be float32, got torch.float64"),
    ([1.0, 2.0], [2], {"name": "Gaussians.means"}, "Gaussians.means must be a torch.Tensor, got list"),
])
def test_a_wrong_shape_says_what_was_expected(x, dims, kwargs, message):
    with pytest.raises(InputError) as info:
        check_shape(x, dims, **kwargs)
    assert str(info.value) == message


def test_importing_checks_loads_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, neuralframe.backend.checks\nassert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
