"""Held-out prompts: a fixed rule that puts some attribute combinations in "eval" and never in "train".

The rule hashes the names of the chosen fields, so it does not depend on the seed, the config, the
wording template or the order of the vocabularies: a caption whose combination is held out is never
generated for training, so "eval" prompts are prompts unseen in training.

    HoldOut()                                  # 10% of full combinations (shape, colour, size, ... motion)
    HoldOut(fields=("shape", "colour"))        # compositional: whole (shape, colour) pairs unseen in training
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from neuralframe.errors import InputError
from neuralframe.generate.data.attributes import Attributes

FIELDS = ("shape", "colour", "size", "position", "texture", "background", "background_colour", "photo", "motion")
SPLITS = ("train", "eval", "all")


@dataclass(frozen=True)
class HoldOut:
    """Which combinations are held out for evaluation.

    Args:
        fraction: the share of combinations (of `fields`) held out, in [0, 1).
        fields: the attributes whose combination decides; see FIELDS.
        salt: change it to draw a different held-out set.
    """

    fraction: float = 0.1
    fields: tuple[str, ...] = FIELDS
    salt: str = "neuralframe-shapes-v1"

    def __post_init__(self):
        if not 0.0 <= self.fraction < 1.0:
            raise InputError(f"held-out fraction must be in [0, 1), got {self.fraction}")
        unknown = [f for f in self.fields if f not in FIELDS]
        if unknown or not self.fields:
            raise InputError(f"held-out fields must be among {', '.join(FIELDS)}; got {self.fields}")

    def key(self, a: Attributes) -> str:
        return "|".join(f"{f}={getattr(a, f)}" for f in self.fields)

    def is_heldout(self, a: Attributes) -> bool:
        digest = hashlib.blake2b(f"{self.salt}|{self.key(a)}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2.0**64 < self.fraction

    def accepts(self, a: Attributes, split: str) -> bool:
        """Whether `a` belongs to `split` ("train", "eval" or "all")."""
        if split == "all":
            return True
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
        return self.is_heldout(a) == (split == "eval")
