"""Shared fixtures for the matting tests: real photos of people from the bundled media."""

import pytest
import torch


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    from neuralframe.matting.media import load_person

    return load_person("astronaut")


@pytest.fixture(scope="session")
def real_images(astronaut):
    """Real photos: two people (bundled) and two scenes without one (scikit-image's own data)."""
    import numpy as np
    import skimage.data

    from neuralframe.matting.media import load_person

    camera = load_person("camera")
    return {"astronaut": astronaut, "camera": camera,
            "coffee": torch.from_numpy(np.ascontiguousarray(skimage.data.coffee())),
            "chelsea": torch.from_numpy(np.ascontiguousarray(skimage.data.chelsea()))}
