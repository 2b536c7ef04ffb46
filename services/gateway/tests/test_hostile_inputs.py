"""What an attacker sends that no client would: traversal, control characters, hostile names,
numbers past any range, bodies with fields of their own. Each answers a 4xx problem with a code,
and nothing of a refused upload stays in the blob store."""

from __future__ import annotations

import io
import json
import socket
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chromaline.common.blobs import buckets
from chromaline.common.blobs.base import BlobStore
from chromaline.gateway.auth_proxy import PUBLIC_AUTH_ROUTES
from chromaline.gateway.settings import GatewaySettings

from .conftest import World, png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code, answer.text


def _raw_get(world: World, target: str) -> bytes:
    """GET a request target exactly as written (no client normalises it), the whole answer."""
    host, port = world.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/openapi.json",
        "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/docs",
        "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/metrics",
        "/api/v1/auth/%2e%2e/%2e%2e/%2e%2e/internal/v1/api-keys/verify",
        "/api/v1/auth/register/%2e%2e/%2e%2e/%2e%2e/%2e%2e/openapi.json",
        "/api/v1/auth/..%2f..%2f..%2fopenapi.json",
    ],
)
def test_the_auth_proxy_forwards_no_traversal(world: World, target: str) -> None:
    answer = _raw_get(world, target)
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:300]
    assert b'"code":"not_found"' in answer


def test_control_characters_in_a_path_or_query_are_refused(world: World) -> None:
    for target in (
        "/api/v1/auth/%04%09x",
        "/api/v1/jobs?q=%00",
        "/api/v1/jobs?state=%00",
        "/api/v1/auth/me%0d%0a",
    ):
        answer = _raw_get(world, target)
        assert answer.startswith(b"HTTP/1.1 400 "), (target, answer[:300])
        assert b'"code":"invalid_characters"' in answer


def test_the_proxy_forwards_exactly_the_auth_services_public_routes(world: World) -> None:
    document = world.standalone.auth_app().openapi()
    public = {
        path.removeprefix("/api/v1/auth/") for path in document["paths"] if path.startswith("/api/v1/auth/")
    }
    assert set(PUBLIC_AUTH_ROUTES) == public


def test_numbers_and_filters_past_any_range_are_refused(world: World) -> None:
    viewer = world.callers["viewer"].headers
    with world.client() as client:
        _problem(client.get("/api/v1/jobs", params={"page": 10**22}, headers=viewer), 422, "invalid_request")
        _problem(
            client.get("/api/v1/jobs", params={"state": "bogus"}, headers=viewer), 422, "invalid_request"
        )
        assert (
            client.get("/api/v1/jobs", params={"state": "done", "q": "a"}, headers=viewer).status_code == 200
        )
        assert client.get("/api/v1/jobs", params={"until": "9999-12-31"}, headers=viewer).status_code == 200


def test_nul_in_sign_up_or_sign_in_is_refused(world: World) -> None:
    with world.client() as client:
        registered = client.post(
            "/api/v1/auth/register",
            json={
                "email": "nul@example.org",
                "password": "a long enough password",
                "display_name": "a\x00b",
                "organisation_name": "N",
            },
        )
        signed_in = client.post("/api/v1/auth/login", json={"email": "a\x00@example.org", "password": "x"})
    _problem(registered, 422, "invalid_request")
    _problem(signed_in, 422, "invalid_request")


def _corner_values() -> Iterator[str]:
    yield "[[NaN, 1], [2, 1], [2, 2], [1, 2]]"
    yield "[[Infinity, 1], [2, 1], [2, 2], [1, 2]]"
    yield "[" * 10_000 + "]" * 10_000
    yield "[[true, false], [true, false], [true, false], [true, false]]"  # were read as 1 and 0
    yield '[["1", "1"], ["2", "1"], ["2", "2"], ["1", "2"]]'


@pytest.mark.parametrize(
    "corners", list(_corner_values()), ids=["nan", "infinity", "deep", "booleans", "strings"]
)
def test_corners_must_be_four_finite_points(world: World, corners: str) -> None:
    before = world.blob_files()
    with world.client() as client:
        answer = client.post(
            "/api/v1/jobs",
            files=[("files", ("a.png", png(), "image/png"))],
            data={"corners": corners},
            headers=world.callers["member"].headers,
        )
        presigned = client.post(
            "/api/v1/uploads/presigned",
            content=f'{{"filename": "a.png", "options": {{"corners": {corners}}}}}',
            headers={**world.callers["member"].headers, "Content-Type": "application/json"},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] in ("invalid_corners", "invalid_options", "invalid_request")
    assert presigned.status_code in (400, 422), presigned.text
    assert presigned.headers["content-type"] == "application/problem+json"
    assert world.blob_files() == before


def _post_raw_multipart(world: World, filename: str, data: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST /api/v1/jobs with ``filename`` written into the part's header byte for byte (clients
    escape control characters there; an attacker does not)."""
    boundary = "chromaline-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with world.client() as client:
        return client.post(
            "/api/v1/jobs",
            content=body,
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )


def _zip_of(name: str) -> bytes:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr(name, png())
    return bundle.getvalue()


BAD_NAMES = {
    "nul": ("a\x00.png", "invalid_filename"),
    "too long": ("a" * 252 + ".png" + "b", "filename_too_long"),
    "too long in utf-8": ("写" * 100 + ".png", "filename_too_long"),
    "dot": (".", "invalid_filename"),
    "only control characters": ("\x1b\t\x7f", "invalid_filename"),
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_unusable_file_names_are_refused_and_leave_nothing_behind(world: World, case: str) -> None:
    name, code = BAD_NAMES[case]
    member = world.callers["member"].headers
    before = world.blob_files()
    with world.client() as client:
        answers = {
            "multipart": _post_raw_multipart(world, name, png(), member),
            "stream": client.put(
                "/api/v1/uploads/stream", params={"filename": name}, content=png(), headers=member
            ),
            "presigned": client.post("/api/v1/uploads/presigned", json={"filename": name}, headers=member),
        }
        if "\x00" not in name:  # zipfile ends a member's name at NUL, writing and reading alike
            answers["zip member"] = client.post(
                "/api/v1/jobs",
                files=[("files", ("set.zip", _zip_of(name), "application/zip"))],
                headers=member,
            )
    for route, answer in answers.items():
        assert 400 <= answer.status_code < 500, (route, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", route
        assert answer.json()["code"] in (code, "invalid_request", "invalid_characters"), (route, answer.text)
    assert world.blob_files() == before


def _download_name(answer: httpx.Response) -> str:
    disposition = answer.headers["content-disposition"]
    assert not {"\r", "\n"} & set(disposition)
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    return httpx.URL("/?n=" + encoded).params["n"]


def test_any_file_name_downloads_with_an_rfc_6266_header(world: World) -> None:
    member = world.callers["member"].headers
    with world.client() as client:
        uploaded = client.post(
            "/api/v1/jobs",
            files=[
                ("files", ("写真.png", png(), "image/png")),
                ("files", ("photo\u202egnp.exe.png", png(), "image/png")),
            ],
            headers=member,
        ).json()
        streamed = client.put(
            "/api/v1/uploads/stream", params={"filename": "scan\u202e1.png"}, content=png(), headers=member
        ).json()
        with_newline = _post_raw_multipart(world, "line\x1b\tbreak.png", png(), member)
        assert with_newline.status_code == 202, with_newline.text
        names = {}
        for job in [*uploaded["jobs"], *streamed["jobs"], *with_newline.json()["jobs"]]:
            answer = client.get(f"/api/v1/jobs/{job['id']}/files/original", headers=member)
            assert answer.status_code == 200, answer.text
            names[job["filename"]] = _download_name(answer)
    assert names == {
        "写真.png": "写真.png",
        "photognp.exe.png": "photognp.exe.png",
        "scan1.png": "scan1.png",
        "linebreak.png": "linebreak.png",
    }


def test_a_name_stored_before_names_were_cleaned_still_downloads(world: World) -> None:
    world.sql(
        "UPDATE gateway.jobs SET filename = :name WHERE id = :id", name="old\r\nname.png", id=world.job_id
    )
    try:
        with world.client() as client:
            answer = client.get(
                f"/api/v1/jobs/{world.job_id}/files/original", headers=world.callers["viewer"].headers
            )
    finally:
        world.sql("UPDATE gateway.jobs SET filename = 'a.png' WHERE id = :id", id=world.job_id)
    assert answer.status_code == 200
    assert _download_name(answer) == "old\r\nname.png"


def _png_of(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_confirmed_presigned_original_cannot_be_replaced(world: World, presigning_store: BlobStore) -> None:
    store = presigning_store
    member = world.callers["member"].headers
    checked, swapped = _png_of((10, 20, 30)), _png_of((200, 10, 10))
    with world.client() as client:
        offer = client.post("/api/v1/uploads/presigned", json={"filename": "p.png"}, headers=member).json()
        url_key = urlsplit(offer["url"]).path.split("/", 2)[2]
        world.server.run(store.put_bytes(buckets.ORIGINALS, url_key, checked, content_type="image/png"))
        confirmed = client.post(offer["confirm"], headers=member)
        assert confirmed.status_code == 202, confirmed.text
        job_id = confirmed.json()["jobs"][0]["id"]
        world.server.run(store.put_bytes(buckets.ORIGINALS, url_key, swapped, content_type="image/png"))
        original = client.get(f"/api/v1/jobs/{job_id}/files/original", headers=member)
    assert original.content == checked
    [(stored,)] = world.sql("SELECT original FROM gateway.jobs WHERE id = :id", id=job_id)
    assert stored["key"] != url_key


def _reset_links(world: World) -> list[str]:
    rows = world.sql(
        "SELECT payload FROM auth.outbox WHERE routing_key = 'user.password_reset_requested' ORDER BY id"
    )
    return [
        str((payload if isinstance(payload, dict) else json.loads(payload))["data"]["reset_url"])
        for (payload,) in rows
    ]


def test_a_reset_link_opens_the_web_apps_reset_page(world: World) -> None:
    email = world.admin_tokens["user"]["email"]
    with world.client() as client:
        assert client.post("/api/v1/auth/password/reset-request", json={"email": email}).status_code == 202
        link = urlsplit(_reset_links(world)[-1])
        base = world.standalone.runtimes["auth"].settings.public_base_url
        page = client.get(link.path or "/")
    assert f"{link.scheme}://{link.netloc}" == base.rstrip("/")
    assert link.fragment.startswith("/reset?")
    assert parse_qs(urlsplit(link.fragment).query)["token"]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


def _answer_to_an_unsent_upload(world: World, headers: dict[str, str], declared: int = 2 * 1024**3) -> bytes:
    """POST /api/v1/jobs declaring a ``declared``-byte multipart body (by default, within what a
    batch may send) and sending only its first bytes: the answer up to its problem's code (it may
    come in more than one segment), or b"" when none came within 10 s (the gateway waiting for
    the body)."""
    host, port = world.url.removeprefix("http://").split(":")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\n{head}"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n"
            '--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'.encode()
            + b"\0" * 65536
        )
        answer = b""
        try:
            while b'"code"' not in answer and (chunk := connection.recv(65536)):
                answer += chunk
        except TimeoutError:
            pass
        return answer


def test_an_upload_larger_than_any_batch_is_refused_before_its_body_is_read(world: World) -> None:
    """A member could make the gateway spool a body of any size to disk: the per-file limits were
    checked once the whole form had been read. 10 GB declared is past the 4 GiB a batch may send."""
    answer = _answer_to_an_unsent_upload(world, world.callers["member"].headers, declared=10**10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b'"code":"body_too_large"' in answer


def test_an_upload_is_refused_before_its_body_is_read_when_the_caller_may_not_upload(world: World) -> None:
    anonymous = _answer_to_an_unsent_upload(world, {})
    forged = _answer_to_an_unsent_upload(world, {"Authorization": "Bearer not-a-token"})
    viewer = _answer_to_an_unsent_upload(world, world.callers["viewer"].headers)
    assert anonymous.startswith(b"HTTP/1.1 401 "), anonymous[:300]
    assert forged.startswith(b"HTTP/1.1 401 "), forged[:300]
    assert viewer.startswith(b"HTTP/1.1 403 "), viewer[:300]
    assert b'"code":"unauthenticated"' in anonymous


@contextmanager
def _follow(world: World, job_id: str, caller: str) -> Iterator[ClientConnection]:
    """A progress socket on ``job_id`` as ``caller``, once its first view has come."""
    url = world.url.replace("http://", "ws://") + f"/api/v1/jobs/{job_id}/events"
    with connect(url + world.callers[caller].ws_query, open_timeout=10) as socket_:
        assert json.loads(socket_.recv(timeout=10))["id"] == job_id
        yield socket_


def test_one_user_holds_a_bounded_number_of_progress_sockets(world: World) -> None:
    """One user could open progress sockets on a job that does not end until the gateway ran out of
    connections, each polling the database twice a second; a socket the client left stays counted
    no longer than it takes the gateway to notice."""
    job_id = world.new_job(state="queued")
    settings = world.standalone.runtimes["gateway"].settings
    assert isinstance(settings, GatewaySettings)
    limit = settings.max_progress_sockets_per_user
    with ExitStack() as held:
        for _ in range(limit):
            held.enter_context(_follow(world, job_id, "viewer"))
        with pytest.raises(ConnectionClosed) as refused, _follow(world, job_id, "viewer"):
            pass
        assert refused.value.rcvd is not None
        assert (refused.value.rcvd.code, refused.value.rcvd.reason) == (4429, "too_many_connections")
        held.enter_context(_follow(world, job_id, "member"))
    deadline = time.monotonic() + 10
    while True:
        try:
            with ExitStack() as again:
                for _ in range(limit):
                    again.enter_context(_follow(world, job_id, "viewer"))
            break
        except ConnectionClosed:
            assert time.monotonic() < deadline, "the sockets the client closed stay counted"
            time.sleep(0.2)


def test_a_progress_socket_ends_when_its_api_key_is_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket was admitted once, when it opened: a revoked key (or an expired access token) kept
    following the job for as long as the socket stayed open."""
    settings = world.standalone.runtimes["gateway"].settings
    assert isinstance(settings, GatewaySettings)
    monkeypatch.setattr(settings, "progress_socket_recheck_seconds", 0.5)
    job_id = world.new_job(state="queued")
    admin = world.callers["admin"].headers
    with world.client() as client:
        created = client.post(
            "/api/v1/auth/api-keys", json={"name": "watcher", "scopes": ["read"]}, headers=admin
        )
        assert created.status_code == 201, created.text
        key = created.json()
        url = world.url.replace("http://", "ws://") + f"/api/v1/jobs/{job_id}/events"
        with connect(url, additional_headers={"X-API-Key": key["key"]}, open_timeout=10) as socket_:
            assert json.loads(socket_.recv(timeout=10))["id"] == job_id
            assert client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=admin).status_code == 204
            with pytest.raises(ConnectionClosed) as closed:
                socket_.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "unauthenticated")


def _start_upload(world: World, headers: dict[str, str]) -> socket.socket:
    """A multipart upload of 100 MB declared, of which only the first bytes are sent: the gateway
    waits for the rest with the connection open."""
    host, port = world.url.removeprefix("http://").split(":")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\n{head}"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {10**8}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'.encode()
        + b"\0" * 65536
    )
    return connection


def test_an_api_key_is_not_taken_from_a_progress_sockets_address(world: World) -> None:
    """The address carried a credential that lives for months into proxies' logs and histories;
    only the access token, which a browser cannot send otherwise, is taken from there."""
    key = world.callers["key_admin"].headers["X-API-Key"]
    url = world.url.replace("http://", "ws://") + f"/api/v1/jobs/{world.job_id}/events?access_token={key}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code in (401, 403)


def test_headers_the_auth_service_cannot_be_sent_are_refused(world: World) -> None:
    """A header value outside ASCII made the hop to the auth service fail: 500, signed in or not."""
    with world.client() as client:
        for name in ("Idempotency-Key", "X-Organisation-ID", "Authorization"):
            answer = client.post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "x" * 12},
                headers=[(name.encode(), b"Bearer \xe9" if name == "Authorization" else b"\xe9")],
            )
            _problem(answer, 400, "invalid_header")


def test_one_user_sends_a_bounded_number_of_uploads_at_once(world: World) -> None:
    """Each upload may send gigabytes, spooled to disk as they arrive: one user could send as many
    at once as the upload rate's burst allowed, each holding its disk space until done."""
    settings = world.standalone.runtimes["gateway"].settings
    assert isinstance(settings, GatewaySettings)
    operator = world.callers["operator"].headers
    with ExitStack() as sending:
        for _ in range(settings.max_uploads_in_progress_per_user):
            sending.enter_context(_start_upload(world, operator))
        time.sleep(0.5)
        answer = _answer_to_an_unsent_upload(world, operator)
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:300]
        assert b'"code":"too_many_uploads"' in answer
        assert _answer_to_an_unsent_upload(world, world.callers["member"].headers) == b"", (
            "another user's upload is read"
        )
    deadline = time.monotonic() + 10
    while b"too_many_uploads" in (answer := _answer_to_an_unsent_upload(world, operator, declared=10**6)):
        assert time.monotonic() < deadline, "the uploads that ended still count"
        time.sleep(0.2)
