"""Build assets/models/clip-tokenizer/ from open-clip-torch's BPE vocabulary (MIT).

    python scripts/build_clip_tokenizer.py                      # pip download open_clip_torch --no-deps, then build
    python scripts/build_clip_tokenizer.py --wheel open_clip_torch-3.3.0-py3-none-any.whl
    python scripts/build_clip_tokenizer.py --bpe bpe_simple_vocab_16e6.txt.gz --out /tmp/tok

With --wheel or by download, the wheel's LICENSE is copied beside the vocabulary and the wheel's name
and the file's sha256 are printed for the README.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from neuralframe.generate.tokenizer import ASSET_DIR, build_clip_tokenizer

BPE_NAME = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def _download_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "open_clip_torch", "--no-deps", "-d", str(dest)], check=True
    )
    return next(dest.glob("open_clip_torch-*.whl"))


def _from_wheel(wheel: Path, tmp: Path, out: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        bpe = tmp / "bpe_simple_vocab_16e6.txt.gz"
        bpe.write_bytes(zf.read(BPE_NAME))
        licenses = [n for n in zf.namelist() if ".dist-info/" in n and Path(n).name.upper().startswith("LICENSE")]
        if licenses:
            out.mkdir(parents=True, exist_ok=True)
            (out / "LICENSE").write_bytes(zf.read(licenses[0]))
    print(f"wheel: {wheel.name} sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}")
    return bpe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--wheel", type=Path, help="an open_clip_torch wheel already downloaded")
    src.add_argument("--bpe", type=Path, help="bpe_simple_vocab_16e6.txt.gz itself")
    ap.add_argument("--out", type=Path, default=ASSET_DIR)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.bpe is not None:
            bpe = args.bpe
        else:
            bpe = _from_wheel(args.wheel or _download_wheel(tmp), tmp, args.out)
        print(f"bpe: sha256 {hashlib.sha256(Path(bpe).read_bytes()).hexdigest()}")
        out = build_clip_tokenizer(bpe, args.out)
    for f in sorted(out.iterdir()):
        print(f"{f}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
