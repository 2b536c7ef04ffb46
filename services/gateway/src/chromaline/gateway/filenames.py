"""File names as clients give them and as downloads name them.

A name is stored as a display name: Unicode kept (``写真.jpg``), but control characters (CR, LF,
…) and invisible format characters (the right-to-left override that makes ``gpj.exe`` read as
``exe.jpg``) removed. A name that is empty, ``.`` or ``..`` once cleaned, holds NUL, or is longer
than :data:`MAX_NAME_BYTES` in UTF-8 is refused (422) before anything is stored.

Downloads name their file per RFC 6266: an ASCII ``filename`` for old clients and the exact name
in ``filename*`` (RFC 5987, UTF-8, percent-encoded), so no name can break the header.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from chromaline.common.problems import ApiError

MAX_NAME_BYTES = 255
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf"})


def display_name(raw: str) -> str:
    """The name to store and show for an uploaded file named ``raw`` (see the module)."""
    if "\x00" in raw:
        raise ApiError(422, "invalid_filename", "a file name may not hold NUL characters")
    cleaned = "".join(
        char
        for char in unicodedata.normalize("NFC", raw)
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    ).strip()
    if cleaned in ("", ".", ".."):
        raise ApiError(422, "invalid_filename", f"{raw[:80]!r} is no usable file name")
    if len(cleaned.encode()) > MAX_NAME_BYTES:
        raise ApiError(
            422,
            "filename_too_long",
            f"a file name may be at most {MAX_NAME_BYTES} bytes in UTF-8",
            max_bytes=MAX_NAME_BYTES,
        )
    return cleaned


def content_disposition(filename: str) -> str:
    """``attachment`` with the name for every client: ASCII fallback, then the exact UTF-8 name."""
    fallback = "".join(char if 0x20 <= ord(char) < 0x7F and char not in '"\\%' else "_" for char in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
