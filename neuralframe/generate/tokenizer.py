"""The bundled CLIP BPE tokenizer: OpenAI CLIP's byte-level BPE, as shipped in open-clip-torch.

    tok = load_clip_tokenizer()                   # transformers.CLIPTokenizer over assets/models/clip-tokenizer
    ids = tok("a small red star")["input_ids"]    # [49406, ..., 49407]

`build_clip_tokenizer` turns open_clip's `bpe_simple_vocab_16e6.txt.gz` into the `vocab.json` +
`merges.txt` (+ `tokenizer_config.json`, `special_tokens_map.json`) layout that transformers'
`CLIPTokenizer` and diffusers pipelines read from a `tokenizer/` folder. The vocabulary is built in
the same order as open_clip's `SimpleTokenizer` (256 byte symbols, the same 256 with `</w>`, one
token per merge, then the two special tokens), so ids agree: 49408 tokens, `<|startoftext|>` = 49406,
`<|endoftext|>` = 49407. open_clip names the special tokens `<start_of_text>`/`<end_of_text>`; the
ids are the same, the names here are the ones transformers expects.

Text cleanup differs slightly: open_clip runs `ftfy.fix_text` and `html.unescape` before lowercasing,
transformers (5.x) only NFC-normalises, collapses whitespace and lowercases. Plain text, punctuation,
digits, accents and mixed case give identical ids; curly quotes, HTML entities, ligatures, full-width
letters and mojibake do not (open_clip straightens/unescapes/repairs them first).
"""

from __future__ import annotations

import json
from pathlib import Path

from neuralframe.assets import asset
from neuralframe.backend.archives import read_gzip
from neuralframe.errors import InputError, MissingDependencyError

ASSET_DIR = asset("models", "clip-tokenizer")
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# open_clip keeps the first 49152 - 256 - 2 merges of the file (the rest are never used)
N_MERGES = VOCAB_SIZE - 2 * 256 - 2
MAX_BPE_BYTES = 16 << 20  # open_clip's merges file inflates to about 1.4 MB


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode symbols."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def read_bpe_merges(bpe_gz: str | Path) -> list[tuple[str, str]]:
    """The merges open_clip uses, in rank order, from `bpe_simple_vocab_16e6.txt.gz`."""
    path = Path(bpe_gz)
    if not path.is_file():
        raise InputError(f"BPE vocabulary not found: {path}")
    lines = read_gzip(path, "BPE vocabulary", limit=MAX_BPE_BYTES).decode("utf-8", errors="replace").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    if len(merges) != N_MERGES or any(len(m) != 2 for m in merges):
        raise InputError(f"{path} is not a CLIP BPE merges file: expected {N_MERGES} merge lines after the header")
    return merges  # type: ignore[return-value]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Token -> id, in open_clip's order."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise InputError(f"the merges give {len(vocab)} distinct tokens, expected {VOCAB_SIZE}")
    return vocab


def build_clip_tokenizer(bpe_gz: str | Path, out_dir: str | Path) -> Path:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json to `out_dir`."""
    merges = read_bpe_merges(bpe_gz)
    vocab = build_vocab(merges)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # one compact line, UTF-8 (the byte symbols are not escaped): the layout of CLIP tokenizers on the hub
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CONTEXT_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return out


def load_clip_tokenizer(path: str | Path | None = None):
    """transformers' CLIPTokenizer over a vocab.json/merges.txt folder (the bundled one by default)."""
    folder = Path(path) if path is not None else ASSET_DIR
    missing = [f for f in ("vocab.json", "merges.txt") if not (folder / f).is_file()]
    if missing:
        # without files CLIPTokenizer silently builds a 2-token vocabulary: refuse instead
        raise InputError(f"tokenizer folder {folder} lacks {', '.join(missing)}")
    try:
        from transformers import CLIPTokenizer
    except ImportError as e:  # pragma: no cover - transformers is a core dependency
        raise MissingDependencyError("the CLIP tokenizer needs transformers: pip install transformers") from e
    tok = CLIPTokenizer.from_pretrained(str(folder))
    if len(tok) != VOCAB_SIZE:
        raise InputError(f"tokenizer in {folder} has {len(tok)} tokens, expected {VOCAB_SIZE}")
    return tok


def load_folder_tokenizer(folder: str | Path):
    """A pipeline folder's `tokenizer/` (vocab.json + merges.txt, or a fast tokenizer.json), checked to hold the
    whole CLIP vocabulary."""
    folder = Path(folder)
    if (folder / "vocab.json").is_file():
        return load_clip_tokenizer(folder)
    if not (folder / "tokenizer.json").is_file():
        raise InputError(f"tokenizer folder {folder} has neither vocab.json + merges.txt nor tokenizer.json")
    from transformers import CLIPTokenizerFast

    tok = CLIPTokenizerFast.from_pretrained(str(folder))
    if len(tok) != VOCAB_SIZE:
        raise InputError(f"tokenizer in {folder} has {len(tok)} tokens, expected {VOCAB_SIZE}")
    return tok
