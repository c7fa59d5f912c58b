"""gRPC connection establishment: a cold check gets its whole timeout to connect.

A real grpcio server behind a real loopback TCP proxy that delays every byte,
as a slower network path (a sidecar, a cross-zone hop) does. grpc-core took
``grpc.min_reconnect_backoff_ms`` as its connect timeout too: at 100 ms, a
handshake needing 2 x 150 ms failed with "connection attempt timed out before
receiving SETTINGS frame" although the check allowed 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from healthkit import Status, Target
from healthkit.strategies.grpc import GrpcConfig, GrpcStrategy
from healthkit.testing import OipServicer, serve_grpc


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it arrived (order kept)."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(65536)
            chunks.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def write() -> None:
        while True:
            when, data = await chunks.get()
            await asyncio.sleep(max(0.0, when - loop.time()))
            if not data:
                writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (OSError, RuntimeError):
        pass  # the other side went away: so does this direction
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def latency_proxy(upstream: str, delay: float) -> AsyncIterator[str]:
    """A TCP proxy on 127.0.0.1 adding ``delay`` seconds each way; yields its "host:port"."""
    host, port = upstream.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()
    # Every stream end ever opened, closed again on the way out whatever state it is in.
    writers: list[asyncio.StreamWriter] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            return
        writers.append(up_writer)
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay))

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.ensure_future(relay(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


async def test_cold_checks_through_a_slow_link_get_their_whole_timeout() -> None:
    async with serve_grpc([OipServicer({"m": True})]) as (_, address):
        for delay in (0.15, 0.3):
            async with latency_proxy(address, delay) as slow:
                for attempt in range(3):
                    # A new strategy each time: a new channel, a cold connection.
                    strategy = GrpcStrategy(GrpcConfig(target=slow, timeout=3.0))
                    try:
                        start = time.perf_counter()
                        result = await strategy.acheck(Target(model="m"))
                        elapsed = time.perf_counter() - start
                    finally:
                        await strategy.aclose()
                    assert result.status is Status.HEALTHY, (delay, attempt, result.detail)
                    print(f"{delay * 1000:.0f} ms each way: cold check took {elapsed:.3f} s")


async def test_a_connection_that_cannot_finish_in_time_says_so() -> None:
    # The link is slower than the whole timeout: the check ends at its deadline, in words.
    async with contextlib.AsyncExitStack() as stack:
        _, address = await stack.enter_async_context(serve_grpc([OipServicer({"m": True})]))
        slow = await stack.enter_async_context(latency_proxy(address, 1.0))
        strategy = GrpcStrategy(GrpcConfig(target=slow, timeout=0.3))
        try:
            result = await strategy.acheck(Target(model="m"))
        finally:
            await strategy.aclose()
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith(
        ("deadline exceeded: no answer within 0.3s", "connection timed out (UNAVAILABLE)")
    ), result.detail
