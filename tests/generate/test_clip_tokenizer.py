"""The bundled CLIP tokenizer gives open_clip's ids (recorded once in a fixture) and is a real BPE vocabulary."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from neuralframe.errors import InputError
from neuralframe.generate.tokenizer import ASSET_DIR, VOCAB_SIZE, build_clip_tokenizer, load_clip_tokenizer

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "clip_tokenizer_ids.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tok():
    return load_clip_tokenizer()


def test_fixture_covers_punctuation_numbers_accents_and_case():
    text = "".join(FIXTURE["ids"])
    assert FIXTURE["vocab_size"] == VOCAB_SIZE
    assert all(c in text for c in "!?.,;:'$%()-@#/")
    assert any(c.isdigit() for c in text) and any(c.isupper() for c in text)
    assert all(c in text for c in "èéûüçñøåßÉÀ")


def test_ids_match_open_clip(tok):
    for sentence, ids in FIXTURE["ids"].items():
        assert tok(sentence)["input_ids"] == ids, sentence


def test_truncation_to_77_matches_open_clip(tok):
    long = [s for s, ids in FIXTURE["ids"].items() if len(ids) > 77]
    assert long, "the fixture needs a sentence longer than the context"
    for sentence, ids in FIXTURE["ids_77"].items():
        assert tok(sentence, truncation=True, max_length=77)["input_ids"] == ids, sentence


def test_plain_constructor_with_vocab_and_merges_gives_the_same_ids():
    import transformers
    from transformers import CLIPTokenizer

    vocab, merges = str(ASSET_DIR / "vocab.json"), str(ASSET_DIR / "merges.txt")
    # transformers 5 names these vocab/merges (and silently ignores vocab_file/merges_file); 4.x the reverse
    if int(transformers.__version__.split(".")[0]) >= 5:
        t = CLIPTokenizer(vocab=vocab, merges=merges)
    else:  # pragma: no cover - the venv has transformers 5
        t = CLIPTokenizer(vocab_file=vocab, merges_file=merges)
    assert len(t) == VOCAB_SIZE
    for sentence, ids in FIXTURE["ids"].items():
        assert t(sentence)["input_ids"] == ids, sentence


def test_real_vocabulary_splits_words(tok):
    # a degenerate tokenizer (2 tokens, everything unknown) must not pass
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok.bos_token == "<|startoftext|>" and tok.bos_token_id == 49406
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 49407
    assert tok.model_max_length == 77
    ids = tok("a small red star moving left over a blue gradient")["input_ids"]
    assert len(set(ids)) > 8
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True) == "a small red star moving left over a blue gradient"
    # a rare word is split into several sub-word pieces
    assert len(tok("smörgåsbord")["input_ids"]) > 3


def test_builder_reproduces_the_bundled_files(tmp_path):
    # the merges file as open_clip ships it: a header line, the merges, a trailing newline
    merges = (ASSET_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    bpe = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("\"bpe_simple_vocab_16e6.txt#version: 0.2\n" + "\n".join(merges) + "\n")
    out = build_clip_tokenizer(bpe, tmp_path / "tok")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out / name).read_bytes() == (ASSET_DIR / name).read_bytes(), name


def test_missing_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="vocab.json"):
        load_clip_tokenizer(tmp_path)
