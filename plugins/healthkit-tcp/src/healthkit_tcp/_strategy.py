"""The ``tcp`` strategy: connect, optionally shake hands over TLS, send and expect bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from healthkit import CheckResult, Status, StrategyContext, Target
from healthkit.toolkit import ResultBuilder, excerpt, secret_masker, tls_context

from ._config import TcpConfig

__all__ = ["TcpStrategy"]

#: How much is read while waiting for ``expect``.
MAX_READ = 64 * 1024
#: How much of an unexpected reply the result shows (characters).
SHOWN = 64


def _send_secrets(send: str | None) -> list[str]:
    """What of ``send`` a peer may echo, each to be masked: the whole of it, each line,
    the value of a ``Name: value`` line and the arguments of a ``VERB args`` line (the
    password of ``AUTH <password>``, the token of ``Authorization: Bearer <token>``)."""
    if send is None:
        return []
    found = [send]
    for line in send.splitlines():
        line = line.strip()
        found.append(line)
        for sep in (":", " "):
            _, cut, rest = line.partition(sep)
            if cut and rest.strip():
                found.append(rest.strip())
    return found


class _Progress:
    """How far one probe got, so a timeout can say in which step it happened."""

    __slots__ = ("step",)

    def __init__(self, tls: bool) -> None:
        self.step = "connect and TLS handshake" if tls else "connect"


class TcpStrategy:
    """Opens a fresh connection per check; holds nothing between checks but a TLS context."""

    name = "tcp"

    def __init__(self, config: TcpConfig) -> None:
        self.config = config
        # For what a peer sends back: it may echo `send` (a password), or a part of it.
        self._mask = secret_masker(config, extra=_send_secrets(config.send))
        # Shared with every instance of the same TLS settings.
        self._ssl = (
            tls_context(verify=config.verify, ca_bundle=config.ca_bundle) if config.tls else None
        )
        self._result = ResultBuilder(self.name, endpoint=config.address)

    @classmethod
    def create(cls, config: TcpConfig, context: StrategyContext) -> TcpStrategy:
        return cls(config)

    def __repr__(self) -> str:
        return f"<TcpStrategy {self.config.address}{' tls' if self.config.tls else ''}>"

    async def acheck(self, target: Target) -> CheckResult:
        cfg = self.config
        progress = _Progress(cfg.tls)
        try:
            return await asyncio.wait_for(self._probe(target, progress), cfg.timeout)
        except asyncio.TimeoutError as exc:
            return self._result(
                target,
                Status.UNHEALTHY,
                f"{cfg.address}: timed out after {cfg.timeout:g}s during {progress.step}",
                exc,
            )
        except ssl.SSLError as exc:
            return self._result(target, Status.UNHEALTHY, f"{cfg.address}: TLS error: {exc}", exc)
        except ConnectionRefusedError as exc:
            return self._result(target, Status.UNHEALTHY, f"{cfg.address}: connection refused", exc)
        except socket.gaierror as exc:
            return self._result(
                target, Status.UNHEALTHY, f"{cfg.address}: cannot resolve host: {exc}", exc
            )
        except OSError as exc:
            return self._result(
                target, Status.UNHEALTHY, f"{cfg.address}: {progress.step} failed: {exc}", exc
            )

    async def _probe(self, target: Target, progress: _Progress) -> CheckResult:
        cfg = self.config
        reader, writer = await asyncio.open_connection(
            cfg.host,
            cfg.port,
            ssl=self._ssl,
            server_hostname=(cfg.server_name or cfg.host) if self._ssl is not None else None,
        )
        try:
            what = f"connected to {cfg.address}"
            if self._ssl is not None:
                version = writer.get_extra_info("ssl_object").version()
                what += f" ({version})"
            send = cfg.send_bytes
            if send is not None:
                progress.step = "send"
                writer.write(send)
                await writer.drain()
            expect = cfg.expect_bytes
            if expect is None:
                return self._result(target, Status.HEALTHY, what)
            progress.step = "expect"
            problem = await self._expect(reader, expect)
            if problem is not None:
                return self._result(target, Status.UNHEALTHY, f"{what}, but {problem}")
            return self._result(target, Status.HEALTHY, f"{what}, got the expected reply")
        finally:
            # A probe owes the peer no graceful goodbye: drop the connection now, so a
            # cancelled check leaves no socket behind and never waits on the peer.
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _expect(self, reader: asyncio.StreamReader, expect: bytes) -> str | None:
        received = bytearray()
        while expect not in received:
            if len(received) >= MAX_READ:
                return f"{self.config.expect!r} not in the first {MAX_READ} bytes"
            chunk = await reader.read(MAX_READ - len(received))
            if not chunk:
                got = self._show(received)
                return f"the connection closed before {self.config.expect!r} arrived; got {got}"
            received += chunk
        return None

    def _show(self, data: bytearray) -> str:
        """A short, printable excerpt of what the peer sent, with every secret masked."""
        if not data:
            return "nothing"
        # Decoded as `send` and `expect` are encoded, so that an echo matches them.
        text = bytes(data).decode(self.config.encoding, errors="replace")
        # Masked first, cut second: a cut through a secret would show its first part.
        return f"'{excerpt(self._mask(text), SHOWN)}'"

    async def aclose(self) -> None:
        # Connections live only inside a check; there is nothing else to release.
        return None
