"""Checks on what clients upload: the image type by content, pixel count, and ZIP archives.

Everything is checked before anything is stored or any event is published, so a bad file in a
batch refuses the batch with a specific error instead of leaving half of it behind.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pillow_heif
from PIL import Image, TiffImagePlugin

from chromaline.common.problems import ApiError
from chromaline.gateway.filenames import display_name

_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>")

IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"FUJIFILMCCD-RAW", "image/x-fuji-raf"),
    (b"IIRO", "image/x-olympus-orf"),
    (b"IIRS", "image/x-olympus-orf"),
    (b"MMOR", "image/x-olympus-orf"),
    (b"IIU\x00", "image/x-panasonic-rw2"),
)
ISO_BRANDS: dict[bytes, str] = {
    b"crx ": "image/x-canon-cr3",
    b"avif": "image/avif",
    b"avis": "image/avif",
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"), "image/heic"),
}
RAW_TYPES = frozenset(
    {
        "image/x-adobe-dng",
        "image/x-raw",
        "image/x-fuji-raf",
        "image/x-olympus-orf",
        "image/x-panasonic-rw2",
        "image/x-canon-cr3",
    }
)
"""Camera RAWs: their pixel count is checked when LibRaw opens them, not here."""
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
"""A ZIP starts with its first member, or, holding none, with its end-of-archive record."""
SNIFF_BYTES = 16
ACCEPTED = "a JPEG, PNG, TIFF, WebP, HEIC, AVIF, DNG or camera RAW image"

Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit with a clear error instead of a warning
pillow_heif.register_heif_opener()


def sniff_content_type(head: bytes) -> str | None:
    """The type of a file from its first bytes: one of the image types, a ZIP, or None."""
    for signature, content_type in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in ISO_BRANDS:
        return ISO_BRANDS[head[8:12]]
    if head.startswith(ZIP_SIGNATURES):
        return "application/zip"
    return None


def _tiff_raw_type(fileobj: IO[bytes]) -> str | None:
    """DNG, or another TIFF-based RAW (NEF, CR2, ARW...), from the first IFD's tags."""
    fileobj.seek(0)
    head = fileobj.read(10)
    if head[8:10] == b"CR":
        return "image/x-raw"
    try:
        directory = TiffImagePlugin.ImageFileDirectory_v2(ifh=head[:8])
        fileobj.seek(directory.next)
        directory.load(fileobj)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        return None
    if 50706 in directory:
        return "image/x-adobe-dng"
    if directory.get(262) in (32803, 34892) or (271 in directory and 330 in directory):
        return "image/x-raw"
    return None


def check_image(fileobj: IO[bytes], filename: str, max_pixels: int) -> str:
    """Validate one image without decoding its pixels; return its content type."""
    fileobj.seek(0)
    content_type = sniff_content_type(fileobj.read(SNIFF_BYTES))
    fileobj.seek(0)
    if content_type is None or content_type == "application/zip":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{filename}: not {ACCEPTED} (checked by content, not by name)",
            filename=filename,
        )
    if content_type == "image/tiff":
        content_type = _tiff_raw_type(fileobj) or content_type
        fileobj.seek(0)
    if content_type in RAW_TYPES:
        return content_type
    try:
        with Image.open(fileobj) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError, RuntimeError) as error:  # RuntimeError: the AVIF decoder's
        why = _OBJECT_REPR.sub("the file", str(error))  # Pillow names our temporary file object
        raise ApiError(
            422, "corrupt_image", f"{filename}: cannot read the image header ({why})", filename=filename
        ) from None
    finally:
        fileobj.seek(0)
    if width * height > max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"{filename}: {width}×{height} pixels exceeds the limit of {max_pixels}",
            filename=filename,
        )
    return content_type


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    max_uncompressed_bytes: int
    max_ratio: float
    max_entry_bytes: int


def safe_member_name(name: str) -> str:
    """The display name of an uploaded file or ZIP member: its base name, refusing absolute paths
    and ``..`` traversal, cleaned as :func:`~chromaline.gateway.filenames.display_name` says."""
    normalised = posixpath.normpath(name.replace("\\", "/"))
    if normalised.startswith(("/", "../")) or normalised == ".." or ":" in normalised.split("/")[0]:
        raise ApiError(
            422,
            "unsafe_archive_path",
            f"the file name {name[:80]!r} points outside its folder (an absolute path, a drive or ..)",
        )
    return display_name(posixpath.basename(normalised))


SIDECAR_SUFFIXES = (
    ".xmp",
    ".thm",
    ".pp3",
    ".dop",
    ".cos",
    ".txt",
    ".md",
    ".json",
    ".csv",
    ".xml",
    ".ini",
    ".db",
)
"""What cameras, raw editors and file systems write beside photos (XMP metadata, camera thumbnails,
RawTherapee, DxO and Capture One settings, notes, ``Thumbs.db``, ``desktop.ini``): a folder of
photos zipped as it is holds them, and they are no photos."""


def _is_not_a_photo(name: str) -> bool:
    """Dot files, the resource forks some archivers add (``__MACOSX/``) and the sidecar files
    beside photos (:data:`SIDECAR_SUFFIXES`) are not photos: left out, not refused."""
    parts = name.replace("\\", "/").split("/")
    if any(part.startswith(".") or part == "__MACOSX" for part in parts if part):
        return True
    return name.lower().endswith(SIDECAR_SUFFIXES)


READABLE_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
"""The compression methods zipfile reads: not AES (99) nor Deflate64 (9, as Windows writes large archives)."""
ENCRYPTED_FLAG = 0x1


def check_readable(info: zipfile.ZipInfo) -> None:
    """Refuse a member that could only be read with a password or a method zipfile lacks (422)."""
    if info.flag_bits & ENCRYPTED_FLAG:
        raise ApiError(
            422,
            "encrypted_archive",
            f"{info.filename}: the member is encrypted; zip the photos without a password",
        )
    if info.compress_type not in READABLE_COMPRESSION:
        raise ApiError(
            422,
            "unsupported_compression",
            f"{info.filename}: compression method {info.compress_type} cannot be read; "
            "use stored, Deflate, BZIP2 or LZMA",
        )


ENTRY_HEADROOM = 4
"""Entries (folders included) the end record may declare per file allowed before the archive is
read: folders do not count against ``max_entries``, a central directory of a million does."""


def _declared_entries(archive: IO[bytes]) -> int | None:
    """The entry count the ZIP's end record declares (the ZIP64 one's for a large archive), read
    from the last bytes alone; None when there is no end record to read."""
    archive.seek(0, 2)
    size = archive.tell()
    tail_length = min(size, 22 + 0xFFFF + 20)  # the end record, its comment, a ZIP64 locator
    archive.seek(size - tail_length)
    tail = archive.read(tail_length)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(tail):
        archive.seek(0)
        return None
    entries: int = struct.unpack_from("<H", tail, end + 10)[0]
    locator = end - 20
    if entries == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        archive.seek(struct.unpack_from("<Q", tail, locator + 8)[0])
        record = archive.read(40)
        if len(record) == 40 and record[:4] == b"PK\x06\x06":
            entries = struct.unpack_from("<Q", record, 32)[0]
    archive.seek(0)
    return entries


def zip_image_members(archive: IO[bytes], limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """The image members of a ZIP, after checking it against path traversal and zip bombs.

    The entry count its end record declares is checked before the archive is read: Python's
    ``zipfile`` builds every entry of the central directory first (a 51 MB ZIP of a million empty
    entries took 5 s and 370 MB).
    """
    declared = _declared_entries(archive)
    if declared is not None and declared > limits.max_entries * ENTRY_HEADROOM:
        raise ApiError(
            413, "too_many_files", f"the archive declares {declared} entries, over {limits.max_entries} files"
        )
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ApiError(422, "corrupt_archive", "the ZIP archive cannot be read") from None
    members = [info for info in bundle.infolist() if not info.is_dir()]
    if len(members) > limits.max_entries:
        raise ApiError(
            413, "too_many_files", f"the archive holds {len(members)} files, over {limits.max_entries}"
        )
    total = 0
    for info in members:
        safe_member_name(info.filename)
        check_readable(info)
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise ApiError(
                413,
                "archive_ratio_exceeded",
                f"{info.filename}: compression ratio {ratio:.0f} exceeds {limits.max_ratio:.0f}",
            )
        if info.file_size > limits.max_entry_bytes:
            raise ApiError(
                413, "file_too_large", f"{info.filename}: {info.file_size} bytes exceeds the limit"
            )
    if total > limits.max_uncompressed_bytes:
        raise ApiError(413, "archive_too_large", f"the archive expands to {total} bytes, over the limit")
    images = [info for info in members if not _is_not_a_photo(info.filename)]
    if not images:
        raise ApiError(
            422, "empty_archive", "the archive holds no photos, only folders, hidden and sidecar files"
        )
    return images


def named_after_archive(refused: ApiError, archive_name: str) -> ApiError:
    """``refused``, a problem found in an uploaded ZIP, as the refusal of the ZIP itself: its
    ``filename`` is the part the client sent (and can set aside to send the rest), its detail
    starts with the ZIP's name."""
    extra = {**refused.extra, "filename": archive_name}
    return ApiError(
        refused.status, refused.code, f"{archive_name}: {refused.detail}", headers=refused.headers, **extra
    )


def read_member_bounded(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Iterator[bytes]:
    """Yield a member's bytes, never more than ``limit``.

    A member whose content does not match its header (size or CRC, as in a crafted archive) is
    refused as corrupt.
    """
    read = 0
    try:
        with bundle.open(info) as member:
            while chunk := member.read(1024 * 1024):
                read += len(chunk)
                if read > limit:
                    raise ApiError(413, "file_too_large", f"{info.filename}: inflates past {limit} bytes")
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ApiError(422, "corrupt_archive", f"{info.filename}: {error}") from None
