"""The checks every request passes before a route reads it: the body limit and control characters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from chromaline.common.problems import install_problem_handlers
from chromaline.common.request_guard import RequestGuard

LIMIT = 1024


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=LIMIT,
        unlimited=[("POST", "/upload")],
        route_limits={("POST", "/batch"): 4 * LIMIT},
    )

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.post("/batch")
    async def batch(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.get("/find")
    async def find(q: str = "") -> dict[str, str]:
        return {"q": q}

    return app


async def _chunks(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * 512


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://guarded"
    ) as client:
        yield client


async def test_a_body_within_the_limit_is_read(client: httpx.AsyncClient) -> None:
    answer = await client.post("/echo", content=b"x" * LIMIT)
    assert answer.json() == {"read": LIMIT}


async def test_a_declared_or_streamed_body_past_the_limit_answers_413(client: httpx.AsyncClient) -> None:
    declared = await client.post("/echo", content=b"x" * (LIMIT + 1))
    streamed = await client.post("/echo", content=_chunks(8))
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "body_too_large"


async def test_unlimited_routes_read_larger_bodies(client: httpx.AsyncClient) -> None:
    answer = await client.post("/upload", content=_chunks(8))
    assert answer.json() == {"read": 8 * 512}


async def test_a_route_with_a_limit_of_its_own_reads_up_to_it_and_no_further(
    client: httpx.AsyncClient,
) -> None:
    within = await client.post("/batch", content=_chunks(8))
    declared = await client.post("/batch", content=b"x" * (4 * LIMIT + 1))
    streamed = await client.post("/batch", content=_chunks(9))
    assert within.json() == {"read": 8 * 512}
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json()["code"] == "body_too_large"
        assert answer.json()["max_bytes"] == 4 * LIMIT


@pytest.mark.parametrize("target", ["/find?q=%00", "/find?q=a%0d%0ab", "/fi%0And", "/find?q=%7F"])
async def test_control_characters_in_the_path_or_query_answer_400(
    client: httpx.AsyncClient, target: str
) -> None:
    answer = await client.get(target)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_characters"


async def test_other_characters_pass(client: httpx.AsyncClient) -> None:
    answer = await client.get("/find", params={"q": "写真 ü+%"})
    assert answer.json() == {"q": "写真 ü+%"}
