"""The CGATS.17 reader: published layouts accepted, anything else refused with its line."""

from __future__ import annotations

import pytest

from chromaline.common.cgats import MAX_BYTES, MAX_PATCHES, CgatsError, parse_cgats

I1PROFILER_STYLE = """CGATS.17
ORIGINATOR\t"i1Profiler"
DESCRIPTOR\t"Six patch studio target, M0, D50 2 degree"
CREATED\t"2026-11-02T10:14:07"
KEYWORD\t"DEVICE_CLASS"
DEVICE_CLASS\t"INPUT"
KEYWORD\t"MEASUREMENT_CONDITION"
MEASUREMENT_CONDITION\t"M0"
NUMBER_OF_FIELDS 8
BEGIN_DATA_FORMAT
SAMPLE_ID\tSAMPLE_NAME\tRGB_R\tRGB_G\tRGB_B\tLAB_L\tLAB_A\tLAB_B
END_DATA_FORMAT
NUMBER_OF_SETS 6
BEGIN_DATA
1\t"White"\t255\t255\t255\t95.12\t-0.41\t1.87
2\t"Mid grey"\t128\t128\t128\t51.30\t0.02\t-0.35
3\t"Black"\t0\t0\t0\t8.44\t0.21\t-0.90
4\t"Red"\t200\t30\t40\t42.75\t55.10\t29.44
5\t"Green"\t40\t160\t60\t55.02\t-41.30\t32.07
6\t"Blue"\t35\t60\t170\t30.88\t18.95\t-49.61
END_DATA
"""

ARGYLL_XYZ = """CTI3   # a comment after the identifier

DESCRIPTOR "Argyll Calibration Target chart information 3"
ORIGINATOR "Argyll target"
ILLUMINANT "D65"
CREATED "Sun Nov  2 10:14:07 2026"
KEYWORD "DEVICE_CLASS"
DEVICE_CLASS "INPUT"

NUMBER_OF_FIELDS 4
BEGIN_DATA_FORMAT
SAMPLE_ID XYZ_X XYZ_Y XYZ_Z
END_DATA_FORMAT

NUMBER_OF_SETS 3
BEGIN_DATA
A01 85.1 90.2 95.3
A02 20.0 21.0 22.9  # a comment in the data
A03 3.1 3.3 3.6
END_DATA
"""


def test_reads_an_i1profiler_style_lab_file() -> None:
    table = parse_cgats(I1PROFILER_STYLE)
    assert table.colour_space == "LAB"
    assert table.illuminant == "D50"  # named in DESCRIPTOR
    assert table.sample_ids == ("1", "2", "3", "4", "5", "6")
    assert table.values[3] == (42.75, 55.10, 29.44)
    assert table.patch_count == 6


def test_reads_an_argyll_style_xyz_file_with_its_illuminant() -> None:
    table = parse_cgats(ARGYLL_XYZ)
    assert table.colour_space == "XYZ"
    assert table.illuminant == "D65"
    assert table.sample_ids == ("A01", "A02", "A03")
    assert table.values[1] == (20.0, 21.0, 22.9)


def test_lab_wins_when_both_are_given_and_no_illuminant_is_none() -> None:
    text = """CGATS.17
BEGIN_DATA_FORMAT
SAMPLE_ID XYZ_X XYZ_Y XYZ_Z LAB_L LAB_A LAB_B
END_DATA_FORMAT
BEGIN_DATA
p1 10 10 10 37.8 0 0
END_DATA
"""
    table = parse_cgats(text)
    assert table.colour_space == "LAB"
    assert table.illuminant is None
    assert table.values == ((37.8, 0.0, 0.0),)


def test_crlf_line_ends_are_read() -> None:
    assert parse_cgats(ARGYLL_XYZ.replace("\n", "\r\n")).patch_count == 3


def test_a_byte_order_mark_before_the_identifier_is_read_past() -> None:
    """Windows editors save UTF-8 with a byte order mark; the identifier after it is still line 1."""
    with_mark = "\ufeff" + I1PROFILER_STYLE.replace("\n", "\r\n")
    assert parse_cgats(with_mark).patch_count == 6


def _broken(old: str, new: str, source: str = ARGYLL_XYZ) -> str:
    assert old in source
    return source.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (_broken("A02 20.0", "A02 nan"), 18, "not a number"),
        (_broken("A02 20.0", "A02 inf"), 18, "not a number"),
        (_broken("A02 20.0", "A02 1e400"), 18, "not a finite number"),
        (_broken("A02 20.0", "A02 2_0.0"), 18, "not a number"),  # float() reads it as 20
        (_broken("A02 20.0", "A02 \u0662\u0660"), 18, "not a number"),  # Arabic-Indic digits
        (_broken("A02 20.0", "A02 0x14"), 18, "not a number"),
        (_broken("A03 3.1", "A01 3.1"), 19, "already used on line 17"),
        (_broken("A03 3.1 3.3 3.6", "A03 3.1 3.3"), 19, "3 values where"),
        (_broken("A03 3.1", "A03 x"), 19, "not a number"),
        (_broken("A03 3.1", "A03 -4"), 19, "outside"),
        (_broken("NUMBER_OF_SETS 3", "NUMBER_OF_SETS 4"), 15, "NUMBER_OF_SETS is 4"),
        (_broken("NUMBER_OF_FIELDS 4", "NUMBER_OF_FIELDS 5"), 10, "NUMBER_OF_FIELDS is 5"),
        (_broken("NUMBER_OF_SETS 3", "NUMBER_OF_SETS \u00b3"), 15, "must be a whole number"),
        (_broken("NUMBER_OF_FIELDS 4", "NUMBER_OF_FIELDS \u0664"), 10, "must be a whole number"),
        (_broken("NUMBER_OF_SETS 3", "NUMBER_OF_SETS " + "9" * 5000), 15, "at most 9 digits"),
        (_broken("NUMBER_OF_FIELDS 4", "NUMBER_OF_FIELDS " + "0" * 4999 + "4"), 10, "at most 9 digits"),
        (_broken('ILLUMINANT "D65"', 'ILLUMINANT "D93"'), 5, "unknown illuminant"),
        (_broken("SAMPLE_ID XYZ_X", "SAMPLE_ID RGB_R"), 11, "neither LAB_L"),
        (_broken("SAMPLE_ID XYZ_X", "SAMPLE_NUMBER XYZ_X"), 11, "neither SAMPLE_ID"),
        (_broken("SAMPLE_ID XYZ_X XYZ_Y", "SAMPLE_ID XYZ_X XYZ_X"), 11, "named twice"),
        (_broken("END_DATA\n", "END_DATA\nBEGIN_DATA\n"), 21, "one table per file"),
        (_broken("END_DATA\n", ""), 19, "without END_DATA"),
        (_broken('ORIGINATOR "Argyll target"', 'ORIGINATOR "Argyll target'), 4, "unterminated"),
        (_broken("CREATED", "CREATED\x00"), 6, "control characters"),
        (_broken("CTI3", "not an identifier"), 1, "file identifier"),
        (_broken("BEGIN_DATA_FORMAT\n", "BEGIN_DATA_FORMAT\nBEGIN_DATA\n"), 12, "not a field name"),
        (_broken("A03 3.1 3.3 3.6", "A03 3.1 3.3 3.6 7"), 19, "5 values where"),
    ],
)
def test_refuses_bad_files_with_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(CgatsError) as caught:
        parse_cgats(text)
    assert caught.value.line == line, str(caught.value)
    assert words in caught.value.reason


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("\n\n  # only a comment\n", "empty"),
        ("CGATS.17\nORIGINATOR x\n", "no BEGIN_DATA_FORMAT"),
        ("CGATS.17\n" + "KEYWORD x\n" * 30_000, "larger than 192 KiB"),
        (
            "CGATS.17\nBEGIN_DATA_FORMAT\nSAMPLE_ID LAB_L LAB_A LAB_B\nEND_DATA_FORMAT\nBEGIN_DATA\nEND_DATA\n",
            "empty",
        ),
    ],
)
def test_refuses_files_without_a_table(text: str, words: str) -> None:
    with pytest.raises(CgatsError, match=words):
        parse_cgats(text)


def test_at_most_max_patches() -> None:
    rows = "".join(f"p{i} 50 0 0\n" for i in range(MAX_PATCHES + 1))
    text = f"CGATS.17\nBEGIN_DATA_FORMAT\nSAMPLE_ID LAB_L LAB_A LAB_B\nEND_DATA_FORMAT\nBEGIN_DATA\n{rows}END_DATA\n"
    assert len(text.encode()) < MAX_BYTES
    with pytest.raises(CgatsError, match=f"more than {MAX_PATCHES} patches") as caught:
        parse_cgats(text)
    assert caught.value.line == 6 + MAX_PATCHES
    exactly = text.replace(f"p{MAX_PATCHES} 50 0 0\n", "")
    assert parse_cgats(exactly).patch_count == MAX_PATCHES
