"""torch files read safely: tensors and plain containers only (`weights_only=True`), never pickled code, and
every failure one line a user can act on.

    state = load_weights(path, f"RVM weights '{path}'", like="the official rvm_mobilenetv3.pth")

Every `torch.load` in neuralframe goes through here, user files and the training's own checkpoints alike:
a checkpoint folder is as easy to swap as a model file.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

from neuralframe.backend.archives import MAX_ARCHIVE_BYTES, check_zip
from neuralframe.errors import InputError

# pickle opcodes that name or call Python objects: what a file of tensors written by torch.save never needs
# outside torch's own reconstructors (the weights-only unpickler refuses the rest)
_CODE_OPS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}
_SCAN_LIMIT = 64 << 20  # a plain pickle larger than this is not scanned for code: it is refused all the same


def load_weights(path: str | os.PathLike, what: str, map_location: Any = "cpu", like: str = "",
                 limit: int = MAX_ARCHIVE_BYTES) -> Any:
    """`torch.load(path, weights_only=True)`; an InputError "{what} could not be read: {why}" otherwise.

    Args:
        what: the file as a user knows it ("RVM weights 'x.pth'", "checkpoint 'work/unet.pt'").
        like: an example of the file expected ("the official rvm_mobilenetv3.pth"), named when it is not one.
        limit: the most its archive may inflate to (`backend.archives.check_zip`, checked with the memory
            available before torch inflates anything).
    """
    import torch

    check_zip(path, what, limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before it refuses a file
            return torch.load(Path(path), map_location=map_location, weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean the same thing to a user
        raise InputError(f"{what} could not be read: {unreadable(path, error, like)}") from None


def unreadable(path: str | os.PathLike, error: Exception, like: str = "") -> str:
    """Why torch.load (weights only) refused a file, in a user's words; torch's own message is a page long."""
    text = str(error)
    if "GLOBAL" in text or "Unsupported global" in text or "add_safe_globals" in text or _holds_code(Path(path)):
        return ("it holds pickled Python code or objects, not only tensors, and was refused as unsafe (loading it "
                "could run that code); save the weights with torch.save(model.state_dict()) or as .safetensors")
    if "zip archive" in text or "PytorchStreamReader" in text or zipfile.is_zipfile(path):
        return "the archive is damaged or incomplete (copy or download it again)"
    return "it is not a file written by torch.save" + (f" (as {like} is)" if like else "")


def _holds_code(path: Path) -> bool:
    """Whether a plain (not zipped) pickle names or calls Python objects: read with pickletools, which runs
    nothing."""
    import pickletools

    try:
        if zipfile.is_zipfile(path) or path.stat().st_size > _SCAN_LIMIT:
            return False
        return any(op.name in _CODE_OPS for op, _, _ in pickletools.genops(path.read_bytes()))
    except (OSError, ValueError, pickle.UnpicklingError, EOFError):
        return False
