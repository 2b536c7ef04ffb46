"""Upload checks: image type by content, pixel limits, ZIP path traversal and zip bombs."""

from __future__ import annotations

import io
import struct
import tempfile
import zipfile
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from chromaline.common.problems import ApiError
from chromaline.gateway.filenames import content_disposition, display_name
from chromaline.gateway.uploads import (
    ZipLimits,
    check_image,
    read_member_bounded,
    safe_member_name,
    sniff_content_type,
    zip_image_members,
)

LIMITS = ZipLimits(
    max_entries=10, max_uncompressed_bytes=50_000_000, max_ratio=100.0, max_entry_bytes=20_000_000
)


def _encoded(extension: str, size: tuple[int, int] = (64, 48), dtype: type = np.uint8) -> bytes:
    pixels = np.full((size[1], size[0], 3), 100, dtype=dtype)
    ok, data = cv2.imencode(extension, pixels)
    assert ok
    return bytes(data)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bomb(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width``×``height``: a decompression bomb seen from outside."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * 4096, 9)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("extension", "expected"), [(".jpg", "image/jpeg"), (".png", "image/png"), (".tif", "image/tiff")]
)
def test_images_are_recognised_by_content(extension: str, expected: str) -> None:
    data = _encoded(extension)
    assert sniff_content_type(data[:16]) == expected
    assert check_image(io.BytesIO(data), "renamed.txt", max_pixels=10_000) == expected


def test_a_sixteen_bit_tiff_is_accepted() -> None:
    assert check_image(io.BytesIO(_encoded(".tif", dtype=np.uint16)), "deep.tif", 10_000) == "image/tiff"


def test_a_text_file_named_like_a_jpeg_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(b"hello, not an image"), "photo.jpg", 10_000)
    assert refused.value.status == 415
    assert refused.value.code == "unsupported_media_type"
    assert "photo.jpg" in refused.value.detail


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(_png_bomb(100_000, 100_000)), "bomb.png", max_pixels=150_000_000)
    assert refused.value.status == 413
    assert refused.value.code == "too_many_pixels"


def test_an_unreadable_header_is_a_corrupt_image() -> None:
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20), "broken.png", 10_000)
    assert refused.value.code == "corrupt_image"


def test_a_refusal_does_not_name_the_servers_own_objects() -> None:
    """Pillow's message named the temporary file object holding the upload, with its address."""
    with tempfile.SpooledTemporaryFile() as upload:
        upload.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
        upload.seek(0)
        with pytest.raises(ApiError) as refused:
            check_image(upload, "broken.png", 10_000)
    assert "object at 0x" not in refused.value.detail


@pytest.mark.parametrize("head", [b"II*\x00", b"MM\x00*\x00\x00", b"II*\x00\x08\x00\x00\x00\x01"])
def test_a_tiff_cut_short_in_its_header_is_a_corrupt_image(head: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(head), "cut.tif", 10_000)
    assert (refused.value.status, refused.value.code) == (422, "corrupt_image")


def _phone_image(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buffer, image_format)
    return buffer.getvalue()


def _dng(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),
        (33421, "H", 2, (2, 2), True),
        (33422, "B", 4, (0, 1, 1, 2), True),
    ]
    tifffile.imwrite(buffer, np.zeros((size[1], size[0]), dtype=np.uint16), photometric=32803, extratags=tags)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "expected"), [("WEBP", "image/webp"), ("HEIF", "image/heic"), ("AVIF", "image/avif")]
)
def test_phone_formats_are_recognised_by_content(image_format: str, expected: str) -> None:
    data = _phone_image(image_format)
    assert sniff_content_type(data[:16]) == expected
    assert check_image(io.BytesIO(data), "IMG_0001.bin", max_pixels=10_000) == expected
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(_phone_image(image_format, (200, 100))), "IMG_0002.bin", max_pixels=10_000)
    assert refused.value.code == "too_many_pixels"


@pytest.mark.parametrize("image_format", ["WEBP", "HEIF", "AVIF"])
def test_a_truncated_phone_image_is_a_corrupt_image(image_format: str) -> None:
    data = _phone_image(image_format)
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(data[:20]), "IMG_0003.bin", max_pixels=10_000)
    assert refused.value.code == "corrupt_image"


def test_an_avif_without_its_primary_item_is_a_corrupt_image() -> None:
    data = _phone_image("AVIF")
    assert b"pitm" in data
    with pytest.raises(ApiError) as refused:
        check_image(io.BytesIO(data.replace(b"pitm", b"xitm", 1)), "IMG_0004.avif", max_pixels=10_000)
    assert (refused.value.status, refused.value.code) == (422, "corrupt_image")


def test_a_dng_is_told_apart_from_a_tiff() -> None:
    assert check_image(io.BytesIO(_dng()), "chart.dng", max_pixels=10_000) == "image/x-adobe-dng"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"FUJIFILMCCD-RAW 0201", "image/x-fuji-raf"),
        (b"IIRO\x08\x00\x00\x00" + bytes(8), "image/x-olympus-orf"),
        (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01", "image/x-canon-cr3"),
    ],
)
def test_camera_raws_are_recognised_by_content(head: bytes, expected: str) -> None:
    assert sniff_content_type(head[:16]) == expected


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs/photo.jpg", "a/../../b.jpg", "..", "C:/x.jpg"])
def test_archive_paths_outside_the_archive_are_refused(name: str) -> None:
    with pytest.raises(ApiError) as refused:
        safe_member_name(name)
    assert refused.value.code == "unsafe_archive_path"
    assert "points outside its folder" in refused.value.detail


def test_archive_paths_inside_are_reduced_to_their_file_name() -> None:
    assert safe_member_name("session/day 1/a.jpg") == "a.jpg"
    assert safe_member_name("session\\b.jpg") == "b.jpg"


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> io.BytesIO:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    bundle.seek(0)
    return bundle


def test_a_zip_bomb_is_refused_by_its_compression_ratio() -> None:
    bomb = _zip({"zeros.jpg": b"\0" * 5_000_000})
    with pytest.raises(ApiError) as refused:
        zip_image_members(bomb, LIMITS)
    assert refused.value.code == "archive_ratio_exceeded"


def test_an_archive_expanding_past_the_total_limit_is_refused() -> None:
    noise = np.random.default_rng(0).bytes(3_000_000)
    limits = ZipLimits(
        max_entries=10, max_uncompressed_bytes=5_000_000, max_ratio=100.0, max_entry_bytes=20_000_000
    )
    with pytest.raises(ApiError) as refused:
        zip_image_members(_zip({"a.jpg": noise, "b.jpg": noise}), limits)
    assert refused.value.code == "archive_too_large"


def _with_header_fields(
    bundle: io.BytesIO, *, flags: int | None = None, method: int | None = None
) -> io.BytesIO:
    """``bundle`` (one member) with its general-purpose flags or compression method rewritten, in
    the member's local header and in the central directory alike."""
    data = bytearray(bundle.getvalue())
    central = data.find(b"PK\x01\x02")
    for offset, value in ((6, flags), (8, method)):
        if value is not None:
            data[offset : offset + 2] = struct.pack("<H", value)
            data[central + offset + 2 : central + offset + 4] = struct.pack("<H", value)
    return io.BytesIO(bytes(data))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"flags": 0x1}, "encrypted_archive"),
        ({"method": 99}, "unsupported_compression"),
        ({"method": 9}, "unsupported_compression"),
    ],
)
def test_an_encrypted_member_or_one_compressed_in_a_way_we_cannot_read_is_refused(
    fields: dict[str, int], code: str
) -> None:
    """zipfile raises RuntimeError for an encrypted member and NotImplementedError for AES (99) or
    Deflate64 (9, as Windows writes large archives): both answered 500 while the archive expanded."""
    bundle = _with_header_fields(_zip({"a.png": b"x" * 100}), **fields)
    with pytest.raises(ApiError) as refused:
        zip_image_members(bundle, LIMITS)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_too_many_members_are_refused() -> None:
    many = _zip({f"{index}.jpg": b"x" for index in range(11)})
    with pytest.raises(ApiError) as refused:
        zip_image_members(many, LIMITS)
    assert refused.value.code == "too_many_files"


@pytest.mark.parametrize("zip64", [False, True])
def test_a_central_directory_of_too_many_entries_is_refused_before_it_is_read(
    zip64: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zipfile built every entry of the central directory before the count was checked: a 51 MB
    ZIP listing a million empty files took seconds and hundreds of MB to refuse."""
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for index in range(LIMITS.max_entries * 5):
            archive.writestr(f"{index}.jpg", b"")
    if zip64:
        many = io.BytesIO(_as_zip64_count(many.getvalue()))
    many.seek(0)

    def unread(*_: object) -> None:
        raise AssertionError("the archive was read")

    monkeypatch.setattr(zipfile, "ZipFile", unread)
    with pytest.raises(ApiError) as refused:
        zip_image_members(many, LIMITS)
    assert (refused.value.status, refused.value.code) == (413, "too_many_files")


def _as_zip64_count(data: bytes) -> bytes:
    """The archive with its entry count moved to a ZIP64 end record, as large archives have it."""
    end = data.rfind(b"PK\x05\x06")
    count = struct.unpack_from("<H", data, end + 10)[0]
    directory_size, directory_offset = struct.unpack_from("<II", data, end + 12)
    record = b"PK\x06\x06" + struct.pack(
        "<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, directory_size, directory_offset
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, end, 1)
    old_end = bytearray(data[end:])
    struct.pack_into("<HH", old_end, 8, 0xFFFF, 0xFFFF)
    return data[:end] + record + locator + bytes(old_end)


def test_a_member_lying_about_its_size_is_refused_as_corrupt() -> None:
    bundle = _zip({"a.jpg": b"\0" * 1000})
    with zipfile.ZipFile(bundle) as archive:
        info = archive.infolist()[0]
        info.file_size = 10
        with pytest.raises(ApiError) as refused:
            b"".join(read_member_bounded(archive, info, limit=1_000_000))
    assert refused.value.code == "corrupt_archive"


def test_a_member_is_never_read_past_the_limit() -> None:
    bundle = _zip({"a.jpg": b"\0" * 3_000_000})
    with zipfile.ZipFile(bundle) as archive, pytest.raises(ApiError) as refused:
        b"".join(read_member_bounded(archive, archive.infolist()[0], limit=2_000_000))
    assert refused.value.code == "file_too_large"


def test_directories_and_hidden_files_are_skipped() -> None:
    members = zip_image_members(
        _zip({"photos/a.jpg": b"x" * 10, "photos/.DS_Store": b"x", "__MACOSX/y": b"z"}), LIMITS
    )
    assert [info.filename for info in members] == ["photos/a.jpg"]


def test_sidecar_files_beside_the_photos_are_skipped() -> None:
    """A folder of photos zipped as it is holds the XMP files and notes written beside them, and
    the whole archive was refused for them (415)."""
    members = zip_image_members(
        _zip(
            {
                "shoot/IMG_1.CR3": b"x" * 10,
                "shoot/IMG_1.xmp": b"<x:xmpmeta/>",
                "shoot/IMG_1.pp3": b"[Version]",
                "shoot/README.txt": b"studio 3",
                "shoot/Thumbs.db": b"\0",
            }
        ),
        LIMITS,
    )
    assert [info.filename for info in members] == ["shoot/IMG_1.CR3"]


def test_a_corrupt_archive_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        zip_image_members(io.BytesIO(b"PK\x03\x04 broken"), LIMITS)
    assert refused.value.code == "corrupt_archive"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("写真.jpg", "写真.jpg"),
        ("photo\u202egpj.exe", "photogpj.exe"),
        ("a\r\nb.png", "ab.png"),
        (" c.tif ", "c.tif"),
    ],
)
def test_display_names_keep_unicode_and_drop_control_and_format_characters(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("a\x00.png", "invalid_filename"),
        (".", "invalid_filename"),
        ("\r\n", "invalid_filename"),
        ("é" * 128, "filename_too_long"),
    ],
)
def test_unusable_names_are_refused(raw: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        display_name(raw)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_a_download_names_its_file_for_old_and_new_clients() -> None:
    header = content_disposition('写真 "1"%.jpg')
    assert (
        header == "attachment; filename=\"__ _1__.jpg\"; filename*=UTF-8''%E5%86%99%E7%9C%9F%20%221%22%25.jpg"
    )
    assert header.isascii()
