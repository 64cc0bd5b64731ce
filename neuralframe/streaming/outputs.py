"""Output paths, checked before any work: one clear line (an `OutputError`) when a command could not write
where it was asked to, would write a format no writer owns, or would replace its own input.

    check_output("out.mp4", (".mp4", ".mkv", ".mov"), accepts="a .mp4, .mkv or .mov video", inputs=["in.mp4"])

Every command that writes a file or a folder runs this on its output before it loads a model or a scene,
so a bad output costs nothing and leaves nothing behind. The writers themselves still write under a
temporary name beside the target and rename it at the end (`streaming.sinks`), so the folder must really
take a new file: `os.access` says yes under /proc, where creating one fails, hence the probe.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from neuralframe.errors import OutputError

def names_a_path(out: str | os.PathLike | None) -> bool:
    """Whether an output is a path: not nothing, a preview window or a virtual camera (`virtualcam[:DEVICE]`)."""
    text = str(out) if out is not None else ""
    return bool(text) and text not in ("window", "virtualcam") and not text.startswith("virtualcam:")


def refuse_input_as_output(source: str | os.PathLike | None, *outputs: str | os.PathLike | None) -> None:
    """An OutputError, before any work, when an output names the input file or folder (the same path, or the
    same file through a link): writing it would replace the user's video with the result."""
    if not source or not Path(source).exists():
        return
    for out in outputs:
        if not names_a_path(out):
            continue
        path = Path(out)
        if path.exists() and os.path.samefile(source, path):
            raise OutputError(f"output '{out}' is the input '{source}': write the result to another name (the "
                              "input is left as it is)")


def check_folder(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> None:
    """An OutputError unless `folder` (default: the one `path` goes in) exists, is a folder and takes a new
    file: a temporary file is created there and removed at once."""
    path = Path(path)
    folder = Path(folder) if folder is not None else (path.parent if str(path.parent) else Path("."))
    if not folder.is_dir():
        above = folder
        while not above.exists() and above != above.parent:
            above = above.parent
        if above.exists() and not above.is_dir():
            raise OutputError(f"cannot write '{path}': '{above}' is a file, not a folder")
        raise OutputError(f"cannot write '{path}': folder '{folder}' does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nf-probe-", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write '{path}': folder '{folder}' cannot hold new files "
                          f"({error.strerror or error})") from None
    os.close(fd)
    os.unlink(probe)


def check_png_output(out: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """`check_output` for a PNG image (a screenshot, a generated image, a contact sheet)."""
    return check_output(out, (".png",), accepts="a .png image", inputs=inputs)


def check_output(out: str | os.PathLike, formats: Sequence[str], *, accepts: str, folder: bool = False,
                 inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """`out` as a Path, or an OutputError naming what is wrong and what `accepts` (the sentence's end:
    "a .png image") when it is an input, has an extension no writer here owns, is a folder where a file
    goes (or a file where a folder goes), or sits in a folder that cannot take new files.

    Args:
        formats: the file name endings a writer owns (".mp4", ".compressed.ply"); may be empty.
        folder: a folder is also an output here: a new name without an extension, or an existing folder.
        inputs: the command's input paths; the output must be none of them.
    """
    for source in inputs:
        refuse_input_as_output(source, out)
    path = Path(out)
    name = path.name.lower()
    owned = any(name.endswith(suffix) for suffix in formats)
    if path.is_dir():
        if not folder or owned:
            raise OutputError(f"cannot write '{out}': it is a folder; write {accepts}")
    elif not owned and folder and path.exists() and (not path.suffix or not formats):
        raise OutputError(f"cannot write '{out}': it is a file, not a folder")
    elif not owned and not (folder and not path.suffix):
        what = ("the name has no extension" if not path.suffix else f"'{path.suffix}' is not a format written here"
                if formats else f"it names a '{path.suffix}' file")
        raise OutputError(f"cannot write '{out}': {what}; write {accepts}")
    check_folder(path)
    return path
