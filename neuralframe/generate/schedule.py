"""Prompt schedules, one grammar for every command: `restyle`, `stream --effect diffuse` and `generate`.

Each entry is "TEXT" (from frame 0) or "TEXT:N" (from frame N). The text may itself hold colons: only a
last ":N" with a whole number N is a start frame ("ratio 16:9 poster:10" starts "ratio 16:9 poster" at
frame 10; "time 10:30 pm" is all text).
"""

from __future__ import annotations

from typing import Iterable

from neuralframe.errors import InputError

NO_PROMPT = "give a prompt with --prompt \"TEXT\""


def parse_schedule(entries: str | Iterable[str] | None, first: str | None = None,
                   missing: str = NO_PROMPT) -> list[tuple[int, str]]:
    """[(start frame, prompt)] sorted by start, or an `InputError` that says what is wrong.

    Args:
        entries: "TEXT" / "TEXT:N" strings (one string is one entry).
        first: a prompt from frame 0 given on its own (`generate`'s positional prompt), or None.
        missing: the message when there is no prompt at all.
    """
    if isinstance(entries, str):
        entries = [entries]
    schedule = [(0, first.strip())] if first and first.strip() else []
    for entry in entries or ():
        text, start = entry, 0
        head, sep, tail = entry.rpartition(":")
        if sep and tail.strip().lstrip("-").isdigit():
            text, start = head, int(tail)
        text = text.strip()
        if start < 0:
            raise InputError(f"prompt '{entry}': the start frame must be 0 or more")
        if not text:
            raise InputError(f"prompt '{entry}' has no text")
        schedule.append((start, text))
    if not schedule:
        raise InputError(missing)
    starts = [s for s, _ in schedule]
    if len(set(starts)) != len(starts):
        raise InputError(f"two prompts start at the same frame ({sorted(starts)}); give each its own :FRAME")
    schedule.sort()
    if schedule[0][0] != 0:
        raise InputError(f"no prompt for frame 0: the first starts at frame {schedule[0][0]} (add one without :N)")
    return schedule
