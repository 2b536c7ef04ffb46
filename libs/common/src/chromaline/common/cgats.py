"""Reading chart reference values from CGATS.17 text files.

CGATS.17 (ANSI CGATS.17-2009, the ASCII exchange format behind IT8.7 and ISO 28178) is how
chart makers, i1Profiler and ArgyllCMS publish measured patch values: a file identifier line,
keyword/value header lines, a ``BEGIN_DATA_FORMAT`` block naming the fields and a
``BEGIN_DATA`` block with one line per patch. This reader takes the subset a colour chart needs:
one table whose fields include ``SAMPLE_ID`` (or ``SAMPLE_NAME``) and either ``LAB_L LAB_A
LAB_B`` or ``XYZ_X XYZ_Y XYZ_Z``; other fields (device values, spectra) are read past. The
illuminant comes from the ``ILLUMINANT`` keyword or, failing that, an illuminant named in
``DESCRIPTOR``.

The reader is strict: anything it does not understand is an error carrying its line number,
never a guess, because a wrong reference value shifts every photo corrected against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

MAX_BYTES = 192 * 1024
"""Largest file accepted (UTF-8 bytes): a 2000-patch table with spectra fits in well under this."""
MAX_PATCHES = 2000
MAX_FIELDS = 256
Illuminant = Literal["A", "C", "D50", "D55", "D65", "D75", "E", "F2", "F7", "F11"]
"""Illuminants a file may name (CIE 1931 2° observer white points are known for each)."""
ILLUMINANTS: tuple[Illuminant, ...] = get_args(Illuminant)
ColourSpace = Literal["LAB", "XYZ"]
_FIELDS: dict[ColourSpace, tuple[str, str, str]] = {
    "LAB": ("LAB_L", "LAB_A", "LAB_B"),
    "XYZ": ("XYZ_X", "XYZ_Y", "XYZ_Z"),
}
_RANGES: dict[ColourSpace, tuple[tuple[float, float], ...]] = {
    "LAB": ((0.0, 100.5), (-200.0, 200.0), (-200.0, 200.0)),
    "XYZ": ((0.0, 200.0), (0.0, 200.0), (0.0, 250.0)),
}
"""Plausible value ranges: XYZ with the white's Y at 100 (a few fluorescent patches exceed it)."""
_STRUCTURE = frozenset({"BEGIN_DATA_FORMAT", "END_DATA_FORMAT", "BEGIN_DATA", "END_DATA"})
BYTE_ORDER_MARK = "\ufeff"
"""What Windows editors put before UTF-8 text; read past, so the identifier stays line 1."""
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_ILLUMINANT_WORD = re.compile(r"\b(D50|D55|D65|D75|F11|F2|F7)\b", re.IGNORECASE)


class CgatsError(ValueError):
    """The text is not a usable CGATS.17 chart reference; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.reason = message
        self.line = line


@dataclass(frozen=True)
class ReferenceTable:
    """A chart's reference values, in file order."""

    colour_space: ColourSpace
    """``LAB`` (CIE Lab, L 0..100) or ``XYZ`` (the white's Y at 100)."""
    illuminant: Illuminant | None
    """None when the file names none."""
    sample_ids: tuple[str, ...]
    values: tuple[tuple[float, float, float], ...]
    descriptor: str | None = None

    @property
    def patch_count(self) -> int:
        return len(self.sample_ids)


@dataclass
class _Reading:
    identifier_seen: bool = False
    keywords: dict[str, tuple[str, int]] = field(default_factory=dict)
    fields: list[str] | None = None
    rows: list[tuple[list[str], int]] | None = None
    declared_fields: tuple[int, int] | None = None
    declared_sets: tuple[int, int] | None = None


def _tokens(line: str, number: int) -> list[str]:
    text = _strip_comment(line, number)
    return [
        match.group(1) if match.group(1) is not None else match.group(2) for match in _TOKEN.finditer(text)
    ]


def _strip_comment(line: str, number: int) -> str:
    """The line up to a ``#`` outside quotes; an unclosed quote is an error."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:position]
    if quoted:
        raise CgatsError("unterminated quoted string", number)
    return line


MAX_COUNT_DIGITS = 9
"""Far past any count the limits allow, and short of the digits ``int()`` refuses to read."""


def _count(value: str, keyword: str, number: int) -> int:
    if not (value.isascii() and value.isdigit()):  # "³" is a digit to isdigit() but no number to int()
        raise CgatsError(f"{keyword} must be a whole number, not {value[:40]!r}", number)
    if len(value) > MAX_COUNT_DIGITS:
        raise CgatsError(f"{keyword} must be a whole number of at most {MAX_COUNT_DIGITS} digits", number)
    return int(value)


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A number as CGATS files write it; ``float()`` also reads ``1_0``, ``inf`` and digits of other
scripts, which a reference value never is."""


def _number(token: str, number: int) -> float:
    if not _DECIMAL.fullmatch(token):
        raise CgatsError(f"{token!r} is not a number", number)
    value = float(token)
    if not math.isfinite(value):
        raise CgatsError(f"{token!r} is not a finite number", number)
    return value


def _read(lines: list[str]) -> _Reading:
    reading = _Reading()
    section: Literal["header", "format", "data", "done"] = "header"
    for number, line in enumerate(lines, start=1):
        if any(ord(char) < 32 and char != "\t" for char in line):
            raise CgatsError("control characters are not allowed", number)
        tokens = _tokens(line, number)
        if not tokens:
            continue
        head = tokens[0]
        if section == "format":
            if head == "END_DATA_FORMAT":
                section = "header"
                continue
            assert reading.fields is not None
            for token in tokens:
                if token in _STRUCTURE or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", token):
                    raise CgatsError(f"{token!r} is not a field name (END_DATA_FORMAT missing?)", number)
            reading.fields.extend(token.upper() for token in tokens)
            if len(reading.fields) > MAX_FIELDS:
                raise CgatsError(f"more than {MAX_FIELDS} fields", number)
            continue
        if section == "data":
            if head == "END_DATA":
                section = "done"
                continue
            assert reading.rows is not None
            reading.rows.append((tokens, number))
            if len(reading.rows) > MAX_PATCHES:
                raise CgatsError(f"more than {MAX_PATCHES} patches", number)
            continue
        if section == "done":
            raise CgatsError(f"unexpected {head!r} after END_DATA: one table per file", number)
        if not reading.identifier_seen:
            if len(tokens) != 1 or not re.fullmatch(r"[A-Za-z0-9._/\-]{1,32}", head):
                raise CgatsError("the first line must be the file identifier (e.g. CGATS.17)", number)
            reading.identifier_seen = True
            continue
        if head == "BEGIN_DATA_FORMAT":
            if reading.fields is not None:
                raise CgatsError("a second BEGIN_DATA_FORMAT", number)
            reading.fields = []
            section = "format"
        elif head == "BEGIN_DATA":
            if reading.fields is None:
                raise CgatsError("BEGIN_DATA before BEGIN_DATA_FORMAT", number)
            reading.rows = []
            section = "data"
        elif head in ("END_DATA", "END_DATA_FORMAT"):
            raise CgatsError(f"{head} without its BEGIN", number)
        elif head == "NUMBER_OF_FIELDS" and len(tokens) == 2:
            reading.declared_fields = (_count(tokens[1], head, number), number)
        elif head == "NUMBER_OF_SETS" and len(tokens) == 2:
            reading.declared_sets = (_count(tokens[1], head, number), number)
        elif re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", head) and len(tokens) <= 2:
            reading.keywords[head.upper()] = (tokens[1] if len(tokens) == 2 else "", number)
        else:
            raise CgatsError(f"not a keyword line: {line.strip()[:60]!r}", number)
    if section == "format":
        raise CgatsError("BEGIN_DATA_FORMAT without END_DATA_FORMAT", len(lines))
    if section == "data":
        raise CgatsError("BEGIN_DATA without END_DATA", len(lines))
    if not reading.identifier_seen:
        raise CgatsError("the file is empty")
    return reading


def _known_illuminant(name: str) -> Illuminant | None:
    return next((known for known in ILLUMINANTS if known == name), None)


def _illuminant(keywords: dict[str, tuple[str, int]]) -> Illuminant | None:
    if "ILLUMINANT" in keywords:
        value, number = keywords["ILLUMINANT"]
        known = _known_illuminant(value.strip().upper().removeprefix("CIE ").strip())
        if known is None:
            raise CgatsError(f"unknown illuminant {value!r} (known: {', '.join(ILLUMINANTS)})", number)
        return known
    descriptor = keywords.get("DESCRIPTOR", ("", 0))[0]
    found = {match.upper() for match in _ILLUMINANT_WORD.findall(descriptor)}
    if len(found) > 1:
        raise CgatsError(
            f"DESCRIPTOR names several illuminants ({', '.join(sorted(found))}): add an ILLUMINANT keyword",
            keywords["DESCRIPTOR"][1],
        )
    return _known_illuminant(found.pop()) if found else None


def _colour_space(fields: list[str], number: int) -> ColourSpace:
    present = [space for space, names in _FIELDS.items() if all(name in fields for name in names)]
    if not present:
        raise CgatsError("the fields include neither LAB_L LAB_A LAB_B nor XYZ_X XYZ_Y XYZ_Z", number)
    return present[0]


def parse_cgats(text: str) -> ReferenceTable:
    """The reference table in a CGATS.17 file; :class:`CgatsError` says what is wrong and where."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise CgatsError(f"the file is larger than {MAX_BYTES // 1024} KiB")
    lines = text.removeprefix(BYTE_ORDER_MARK).splitlines()
    reading = _read(lines)
    keywords = reading.keywords
    if reading.fields is None or reading.rows is None:
        raise CgatsError("no BEGIN_DATA_FORMAT / BEGIN_DATA table")
    fields = reading.fields
    format_line = next(
        number for number, line in enumerate(lines, 1) if line.strip().startswith("BEGIN_DATA_FORMAT")
    )
    if len(set(fields)) != len(fields):
        raise CgatsError("a field is named twice in the data format", format_line)
    if reading.declared_fields is not None and reading.declared_fields[0] != len(fields):
        raise CgatsError(
            f"NUMBER_OF_FIELDS is {reading.declared_fields[0]} but the data format names {len(fields)}",
            reading.declared_fields[1],
        )
    if reading.declared_sets is not None and reading.declared_sets[0] != len(reading.rows):
        raise CgatsError(
            f"NUMBER_OF_SETS is {reading.declared_sets[0]} but the table has {len(reading.rows)} rows",
            reading.declared_sets[1],
        )
    if not reading.rows:
        raise CgatsError("the data table is empty", format_line)
    id_field = "SAMPLE_ID" if "SAMPLE_ID" in fields else "SAMPLE_NAME" if "SAMPLE_NAME" in fields else None
    if id_field is None:
        raise CgatsError("the fields include neither SAMPLE_ID nor SAMPLE_NAME", format_line)
    space = _colour_space(fields, format_line)
    columns = [fields.index(name) for name in _FIELDS[space]]
    id_column = fields.index(id_field)
    ids: list[str] = []
    seen: dict[str, int] = {}
    values: list[tuple[float, float, float]] = []
    for tokens, number in reading.rows:
        if len(tokens) != len(fields):
            raise CgatsError(f"{len(tokens)} values where the data format names {len(fields)}", number)
        sample_id = tokens[id_column]
        if not 0 < len(sample_id) <= 64:
            raise CgatsError("a sample id must be 1 to 64 characters", number)
        if sample_id in seen:
            raise CgatsError(f"sample id {sample_id!r} was already used on line {seen[sample_id]}", number)
        seen[sample_id] = number
        triple = tuple(_number(tokens[column], number) for column in columns)
        for name, value, (low, high) in zip(_FIELDS[space], triple, _RANGES[space], strict=True):
            if not low <= value <= high:
                raise CgatsError(f"{name} {value} is outside {low}..{high}", number)
        ids.append(sample_id)
        values.append((triple[0], triple[1], triple[2]))
    descriptor = keywords.get("DESCRIPTOR", (None, 0))[0]
    return ReferenceTable(
        colour_space=space,
        illuminant=_illuminant(keywords),
        sample_ids=tuple(ids),
        values=tuple(values),
        descriptor=descriptor or None,
    )
