"""Names people read (of users, organisations, charts, profiles) hold only characters they see."""

from __future__ import annotations

import unicodedata

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})
"""Control and format characters: NUL, line breaks, escape sequences, direction overrides,
zero-width spaces. They break the line a name is shown on, or make one name pass for another."""


def hides_characters(text: str) -> bool:
    """Whether ``text`` holds a character of :data:`HIDDEN_CATEGORIES`."""
    return any(unicodedata.category(char) in HIDDEN_CATEGORIES for char in text)
