"""torch files are read with weights_only=True through one helper (`backend.weights.load_weights`): a .pth
holding pickled code is refused as unsafe, says so and what to save instead, and the code never runs."""

from __future__ import annotations

import pickle

import pytest
import torch

from cli_helpers import nf, one_clear_line
from neuralframe.backend.weights import load_weights
from neuralframe.errors import InputError

UNSAFE = "holds pickled Python code or objects, not only tensors, and was refused as unsafe"
WHAT_TO_DO = "save the weights with torch.save(model.state_dict()) or as .safetensors"


class _Boom:
    """Unpickling this creates the file `marker`: the proof that code in a weights file ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled_code(folder, how: str):
    path = folder / "rvm_mobilenetv3.pth"
    payload = {"weights": torch.zeros(3), "boom": _Boom(str(folder / "PWNED"))}
    if how == "torch.save":
        torch.save(payload, path)
    elif how == "legacy torch.save":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    return path


@pytest.mark.parametrize("how", ["torch.save", "legacy torch.save", "pickle.dumps"])
def test_pickled_code_is_refused_as_unsafe_and_never_runs(tmp_path, how):
    path = _pickled_code(tmp_path, how)
    with pytest.raises(InputError) as error:
        load_weights(path, f"weights '{path}'")
    assert UNSAFE in str(error.value) and WHAT_TO_DO in str(error.value)
    assert "damaged" not in str(error.value)
    assert not (tmp_path / "PWNED").exists(), "code in a pickled file ran"


def test_other_unreadable_files_say_what_they_are(tmp_path):
    state = tmp_path / "state.pth"
    torch.save({"w": torch.zeros(1000)}, state)
    assert torch.equal(load_weights(state, "weights")["w"], torch.zeros(1000))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(state.read_bytes()[:300])
    with pytest.raises(InputError, match="the archive is damaged or incomplete"):
        load_weights(truncated, "weights")
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}))  # no code, but not torch's format
    with pytest.raises(InputError, match=r"it is not a file written by torch.save \(as the official x.pth is\)"):
        load_weights(plain, "weights", like="the official x.pth")


def test_matte_refuses_a_pth_holding_code_in_one_line(tmp_path):
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource

    clip = tmp_path / "clip.mp4"
    Pipeline(PatternSource(64, 48, frames=2), [], VideoFileSink(clip)).run()
    weights = _pickled_code(tmp_path, "torch.save")
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the user's earlier result")
    one_clear_line(nf("matte", str(clip), "-o", str(out), "--model", str(weights), "--frames", "2"),
                   f"RVM weights '{weights}' could not be read", UNSAFE, WHAT_TO_DO)
    assert not (tmp_path / "PWNED").exists(), "code in a pickled file ran"
    assert out.read_bytes() == b"the user's earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4", "rvm_mobilenetv3.pth"]
