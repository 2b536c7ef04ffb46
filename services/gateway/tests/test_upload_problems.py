"""What a person sends by mistake, and what they look for afterwards: a ZIP with no photos in it,
an empty ZIP (each refusal names the file it refuses, so a client can set that file aside and
send the rest); a camera's file names and a Metamorfoze level in the history."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest

from .conftest import World, png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_an_empty_zip_is_refused_as_an_archive_without_photos(world: World) -> None:
    member = world.callers["member"]
    with world.client() as client:
        refused = client.post(
            "/api/v1/jobs",
            files=[("files", ("nothing.zip", _zip({}), "application/zip"))],
            headers=member.headers,
        )
    assert refused.status_code == 422, refused.text
    assert (refused.json()["code"], refused.json()["filename"]) == ("empty_archive", "nothing.zip")


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ({"notes/readme.txt": b"light: daylight"}, "empty_archive"),
        ({"shoot/a.png": b"not a png at all"}, "unsupported_media_type"),
    ],
)
def test_a_refused_zip_is_named_so_the_other_files_can_be_sent(
    world: World, members: dict[str, bytes], code: str
) -> None:
    member = world.callers["member"]
    files = [
        ("files", ("session.zip", _zip(members), "application/zip")),
        ("files", ("studio.png", png(), "image/png")),
    ]
    with world.client() as client:
        refused = client.post("/api/v1/jobs", files=files, headers=member.headers)
    body = refused.json()
    assert (body["code"], body["filename"]) == (code, "session.zip"), refused.text


@pytest.mark.parametrize("query", ["IMG_8897", "img_8897", "_8897", "50%"])
def test_the_history_search_finds_camera_file_names_as_typed(world: World, query: str) -> None:
    batch = uuid.uuid4().hex[:6]
    names = {f"{batch}-IMG_8897.jpg", f"{batch}-IMG8897.jpg", f"{batch}-IMGx8897.jpg", f"{batch}-50%.jpg"}
    for name in names:
        job_id = world.new_job()
        world.sql(
            "UPDATE gateway.jobs SET filename = :name WHERE id = CAST(:id AS uuid)", name=name, id=job_id
        )
    member = world.callers["member"]
    with world.client() as client:
        answer = client.get("/api/v1/jobs", params={"q": f"{batch}-{query}"}, headers=member.headers)
    found = {item["filename"] for item in answer.raise_for_status().json()["items"]}
    expected = {name for name in names if f"{batch}-{query}".lower() in name.lower()}
    assert found == expected


@pytest.mark.parametrize("level", ["Full", "Light", "below Light"])
def test_the_history_finds_jobs_by_their_metamorfoze_level(world: World, level: str) -> None:
    ratings = [
        "Metamorfoze 2.0 Full",
        "Metamorfoze 2.0 Light",
        "Metamorfoze 2.0 below Light",
        "FADGI 2016 4-star",
    ]
    batch = uuid.uuid4().hex[:6]
    for rating in ratings:
        job_id = world.new_job()
        world.sql(
            "UPDATE gateway.jobs SET filename = :name, rating = :rating WHERE id = CAST(:id AS uuid)",
            name=f"{batch}-{rating}.jpg",
            rating=rating,
            id=job_id,
        )
    member = world.callers["member"]
    with world.client() as client:
        answer = client.get("/api/v1/jobs", params={"q": batch, "level": level}, headers=member.headers)
    found = [item["filename"] for item in answer.raise_for_status().json()["items"]]
    assert found == [f"{batch}-Metamorfoze 2.0 {level}.jpg"]


def test_a_name_too_long_is_refused_naming_the_file_so_the_others_can_be_sent(world: World) -> None:
    long_name = "東京国立博物館所蔵品撮影記録" * 8 + ".jpg"
    member = world.callers["member"]
    files = [("files", (long_name, png(), "image/png")), ("files", ("studio.png", png(), "image/png"))]
    with world.client() as client:
        refused = client.post("/api/v1/jobs", files=files, headers=member.headers)
    body = refused.json()
    assert (refused.status_code, body["code"], body["filename"]) == (422, "filename_too_long", long_name)
