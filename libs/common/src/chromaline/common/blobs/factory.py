"""Choose a blob store from a URL.

Accepted forms:

``file://<dir>``
    A local directory, relative (``file://.chromaline/blobs``) or absolute (``file:///var/lib/blobs``).
``s3://ACCESS_KEY:SECRET_KEY@host[:port][?secure=false&region=eu-west-1]``
    Any S3 API (MinIO, AWS, ...). TLS is on unless ``secure=false``; without ``region`` the SDK asks
    the server. Keys containing ``:``, ``@`` or ``/`` must be percent-encoded.
``http://ACCESS_KEY:SECRET_KEY@host[:port]`` / ``https://...``
    The same, with TLS given by the scheme; ``region`` may still be passed as a query parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from chromaline.common.blobs.base import BlobStore
from chromaline.common.blobs.filesystem import FilesystemBlobStore
from chromaline.common.blobs.s3 import S3BlobStore, S3Connection

FILE_SCHEME = "file://"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def create_blob_store(url: str) -> BlobStore:
    if url.startswith(FILE_SCHEME):
        directory = url.removeprefix(FILE_SCHEME)
        if not directory:
            raise ValueError("file:// blob URL needs a directory")
        return FilesystemBlobStore(directory)
    scheme = urlsplit(url).scheme
    if scheme in ("s3", "http", "https"):
        return S3BlobStore(parse_s3_url(url))
    raise ValueError(f"unsupported blob store URL scheme {scheme!r}; use file:// or s3://")


def parse_s3_url(url: str) -> S3Connection:
    parts = urlsplit(url)
    if not parts.hostname or parts.username is None or parts.password is None:
        raise ValueError("S3 blob URL needs credentials and a host: s3://ACCESS_KEY:SECRET_KEY@host:port")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"secure", "region"}
    if unknown:
        raise ValueError(f"unknown S3 blob URL parameters: {sorted(unknown)}")
    secure = parts.scheme != "http"
    if "secure" in query:
        if parts.scheme != "s3":
            raise ValueError("secure= only applies to s3:// URLs; http:// and https:// already say it")
        secure = _parse_flag(query["secure"])
    endpoint = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return S3Connection(
        endpoint=endpoint,
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password),
        secure=secure,
        region=query.get("region"),
    )


def _parse_flag(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"secure= must be true or false, not {value!r}")
