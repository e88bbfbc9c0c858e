"""The load generator's lean HTTP client (bench.httpload) against a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bench.httpload import HttpError, Pool, post_request


def run_bounded(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` for at most SCENARIO_S seconds. Once (one full suite in many) the
    connection-loss scenario waited with nothing left to wake it; bounded, such a stall is
    a failure that names where it stood instead of the suite's ten-minute timeout."""
    try:
        asyncio.run(asyncio.wait_for(scenario(), SCENARIO_S))
    except TimeoutError:
        pytest.fail(f"the scenario did not finish in {SCENARIO_S} s: {STAGE}")


SCENARIO_S = 60
STAGE: list[str] = []


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[tuple[str, Pool]]:
    """``app`` on a free 127.0.0.1 port and a Pool to talk to it: (its URL, the pool)."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    pool = Pool()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", pool
    finally:
        STAGE.append("cleanup")
        pool.close()
        await runner.cleanup()


def test_answers_are_read_by_length_and_connections_reused() -> None:
    """Goal: each answer is the whole JSON body the node sent (split over reads or not,
    with its status), and a connection is reused once its answer is in, so a closed loop
    keeps one connection per client. Method: an aiohttp app that echoes the body's size
    after a delay; sequential and concurrent requests; count the connections opened."""
    peers: set[object] = set()

    async def tx(request: web.Request) -> web.Response:
        peers.add(request.transport)
        body = await request.read()
        await asyncio.sleep(0.01)
        status = 200 if request.query.get("wait") == "commit" else 202
        return web.json_response({"status": "committed", "size": len(body),
                                  "pad": "字" * 5000}, status=status)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v1/tx", tx)
        async with serving(app) as (url, pool):
            for size in (0, 10, 200_000):
                data = post_request(url, "/v1/tx?wait=commit", b"x" * size,
                                    "application/msgpack")
                status, answer = await pool.post_json(url, data)
                assert (status, answer["status"], answer["size"]) == (200, "committed", size)
            assert len(pool.all) == 1 and len(peers) == 1
            data = post_request(url, "/v1/tx", b"abc", "application/msgpack")
            answers = await asyncio.gather(*(pool.post_json(url, data) for _ in range(5)))
            assert [a[0] for a in answers] == [202] * 5
            assert len(pool.all) == 5  # one request in flight per connection

    run_bounded(scenario)


def test_a_lost_connection_or_an_answer_that_is_not_json_is_an_http_error() -> None:
    """Goal: the load generator counts a request whose connection dies, or whose answer it
    cannot read, as not committed (HttpError), and opens a new connection for the next.
    Method: one route that drops the connection, one that answers text."""

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.json_response({})

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="not json")

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "committed"})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/drop", drop)
        app.router.add_post("/text", text)
        app.router.add_post("/ok", ok)
        async with serving(app) as (url, pool):
            STAGE[:] = ["drop"]
            with pytest.raises(HttpError, match="connection closed"):
                await pool.post_json(url, post_request(url, "/drop", b"", "text/plain"))
            STAGE.append("text")
            with pytest.raises(HttpError, match="not JSON"):
                await pool.post_json(url, post_request(url, "/text", b"", "text/plain"))
            STAGE.append("ok")
            status, answer = await pool.post_json(url, post_request(url, "/ok", b"",
                                                                    "text/plain"))
            assert (status, answer) == (200, {"status": "committed"})
            assert len(pool.all) == 2  # the dropped one was not reused

    run_bounded(scenario)


def test_the_request_is_http_1_1_with_its_length() -> None:
    """Goal: the pre-built request is what an HTTP/1.1 server expects. Method: its bytes."""
    data = post_request("http://127.0.0.1:7700", "/v1/tx?wait=commit", b"\x81\xa1a\x01",
                        "application/msgpack")
    head, body = data.split(b"\r\n\r\n")
    assert head.decode().split("\r\n") == [
        "POST /v1/tx?wait=commit HTTP/1.1", "Host: 127.0.0.1:7700",
        "Content-Type: application/msgpack", "Content-Length: 4"]
    assert body == b"\x81\xa1a\x01"
