"""Fixtures shared by the NeRF tests: every available implementation of the NeRF kernels."""

import pytest

from neuralframe.render.nerf import hashgrid


def available_impls() -> list[str]:
    return hashgrid.FORWARD.available("cpu")


@pytest.fixture(params=available_impls())
def impl(request) -> str:
    return request.param
