"""Record open_clip's own token ids for a set of sentences, as the reference for our CLIP tokenizer.

    pip download open_clip_torch --no-deps -d /tmp/oc
    pip install --target /tmp/oc/pkgs ftfy           # open_clip's cleanup needs ftfy (and regex, torch)
    PYTHONPATH=/tmp/oc/pkgs python scripts/make_clip_tokenizer_fixture.py --wheel /tmp/oc/open_clip_torch-*.whl

open_clip itself cannot be imported here (its package imports torchvision), so its `tokenizer.py` and
BPE file are unpacked from the wheel into a temporary folder and that one module is imported. Nothing
of open_clip is kept in this repository: the output is only {sentence: ids}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "generate" / "fixtures" / "clip_tokenizer_ids.json"

SENTENCES = [
    "a small red star moving left over a blue gradient",
    "a large green striped ring in the top left over a photo of an astronaut",
    "A Photo of a CAT sitting on the Sofa.",
    "Hello, world! How's it going? I'm fine; you're great...",
    "don't, can't, won't, it's, they've, we'll, I'd, SHE'S",
    "Price: $12.99 (was $20) -- 50% off, 3x faster, 2024-06-01 at 10:30am",
    "3.14159 2,718 1e-5 007 1000000 #42",
    "Crème brûlée, café au lait, naïve façade, jalapeño, smörgåsbord, Ångström",
    "Straße in München; Ærø; Øresund; Łódź; Dvořák; Zürich",
    "ÉCOLE, ÉTÉ, À BIENTÔT, ÑANDÚ",
    "MixedCase CamelCaseWords and UPPERCASE ACRONYMS like NASA, CLIP, GPU",
    "tabs\tand\n newlines   and  multiple   spaces ",
    "e-mail: someone@example.com, url: https://example.com/path?q=1",
    "emoji 🚀🔥 and symbols © ® ™ ± × ÷ → ∞",
    "Ελληνικά και Русский текст",
    "日本語のテキストと中文",
    "a photo of a 🐱 #cute @cat_lover!!!",
    "word " * 100,
]


def _open_clip_tokenizer(wheel: Path, tmp: Path):
    with zipfile.ZipFile(wheel) as zf:
        for name in ("open_clip/tokenizer.py", "open_clip/bpe_simple_vocab_16e6.txt.gz"):
            (tmp / Path(name).name).write_bytes(zf.read(name))
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", tmp / "tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tok = _open_clip_tokenizer(args.wheel, Path(d))
        full = {s: [tok.sot_token_id, *tok.encode(s), tok.eot_token_id] for s in SENTENCES}
        # open_clip's batch call: truncated to 77 with eot last, zero padded; kept here without the padding
        truncated = {}
        for s in SENTENCES:
            row = tok([s])[0].tolist()
            truncated[s] = row[: row.index(tok.eot_token_id) + 1]
    fixture = {
        "source": f"open_clip SimpleTokenizer from {args.wheel.name} (clean='lower')",
        "vocab_size": tok.vocab_size,
        "ids": full,
        "ids_77": truncated,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(full)} sentences to {args.out}")


if __name__ == "__main__":
    main()
