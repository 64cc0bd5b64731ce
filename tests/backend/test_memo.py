"""LastResult recomputes exactly when its tensors change."""

import torch

from neuralframe.backend.memo import LastResult


def test_recomputes_on_in_place_change_or_new_tensor_only():
    calls = []
    memo = LastResult(lambda a, b: calls.append(1) or float((a + b).sum()))
    a, b = torch.ones(3), torch.zeros(3)
    assert memo(a, b) == 3.0 and memo(a, b) == 3.0 and len(calls) == 1
    b.add_(1.0)  # in place: the version counter moves
    assert memo(a, b) == 6.0 and len(calls) == 2
    assert memo(a, b.clone()) == 6.0 and len(calls) == 3  # equal values, another tensor
    assert memo(a, torch.full((3,), 2.0)) == 9.0 and len(calls) == 4
