"""The ``grpc`` strategy: one grpc.aio channel for every model that shares a config."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import grpc
import grpc.aio
from grpc_health.v1 import health_pb2

from ..._errors import ClosedError
from ..._result import CheckResult, ErrorInfo, Target
from ..._status import Status
from ..._strategy import StrategyContext
from ...toolkit import ResultBuilder, retrying, secret_masker
from ._config import GrpcConfig, GrpcTls
from ._oip import CLIENT_METHODS, HEALTH_CHECK, MODEL_READY, SERVER_LIVE, SERVER_READY, pb

__all__ = ["GrpcStrategy"]

_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

#: grpc-core backs off up to two minutes between reconnects by default, so a predictor
#: that comes back would look down for that long; a health check wants to notice soon.
#: ``grpc.min_reconnect_backoff_ms`` is deliberately absent here: grpc-core also takes it
#: as the connect timeout of every attempt (see :func:`_channel_options`).
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # tenacity alone decides about retries, with the limits of the config.
    ("grpc.enable_retries", 0),
)

#: grpc-core's floor for the connect timeout.
_MIN_CONNECT_MS = 100
#: The connect timeout's ceiling. grpc-core does not abort a connection attempt when
#: its channel closes: the socket of a handshake with a silent peer stays open until
#: this bound (measured: a 30 s timeout held it 30 s after ``aclose``). A real link
#: connects in well under a second; closing must release everything soon.
_MAX_CONNECT_MS = 3000


def _channel_options(config: GrpcConfig) -> list[tuple[str, Any]]:
    """Channel options for ``config``: fast reconnects, and a connect timeout of one whole check.

    grpc-core gives each connection attempt ``max(backoff, min_reconnect_backoff_ms)``
    to finish TCP, TLS and the HTTP/2 SETTINGS exchange. Set to 100 ms, a cold
    check over a link with 150 ms of latency failed although its timeout allowed
    much more; left at grpc-core's default (20 s), a blackholed predictor would
    hold one attempt for 20 s. The check's own timeout is the honest bound, up to
    :data:`_MAX_CONNECT_MS`, which also bounds how long a closed channel's socket lives.
    """
    connect_ms = min(_MAX_CONNECT_MS, max(_MIN_CONNECT_MS, math.ceil(config.timeout * 1000)))
    options = [*_CHANNEL_OPTIONS, ("grpc.min_reconnect_backoff_ms", connect_ms)]
    tls = config.tls
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


# grpc-core reports all of these as UNAVAILABLE; its details say which, in free text.
_DNS_WORDS = ("errors resolving", "dns resolution failed", "domain name not found")
_CONNECT_TIMEOUT_WORDS = ("connection attempt timed out", "timed out before receiving settings")
_NOT_HTTP2_WORDS = ("failed parsing http/2", "expected settings frame", "http2 frame")
_TLS_WORDS = ("ssl", "tls", "handshake", "certificate", "x509", "alpn", "hostname verification")
_RESET_WORDS = (
    "reset",
    "socket closed",
    "connection closed",
    "broken pipe",
    "eof",
    "goaway",
    "cancelling all calls",  # the server sent GOAWAY: it stopped while the call was open
)
_REFUSED_WORDS = ("refused",)
#: The OpenSSL reason after ``CERTIFICATE_VERIFY_FAILED: ``, e.g. "unable to get local issuer
#: certificate" or "certificate has expired".
_VERIFY_REASON = re.compile(r"certificate_verify_failed:\s*([^:]+)", re.IGNORECASE)
#: The OpenSSL reason code of any other handshake failure, e.g. ``WRONG_VERSION_NUMBER``.
_SSL_REASON = re.compile(r"OPENSSL_internal:([A-Z0-9_]+)")

_SERVING = {
    health_pb2.HealthCheckResponse.SERVING: (Status.HEALTHY, "SERVING"),
    health_pb2.HealthCheckResponse.NOT_SERVING: (Status.UNHEALTHY, "NOT_SERVING"),
    health_pb2.HealthCheckResponse.UNKNOWN: (Status.UNKNOWN, "UNKNOWN"),
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: (Status.UNKNOWN, "SERVICE_UNKNOWN"),
}


class _TlsSetupError(Exception):
    """A certificate file of the ``tls`` table cannot be read."""


class _UnreadableReply(Exception):
    """The server answered with bytes that are not the expected protobuf message."""


@attrs.frozen
class _Garbage:
    """What the deserializer hands back for an unparsable reply (grpc would log and pass None)."""

    message: str
    size: int
    reason: str


def _lenient(message: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except Exception as exc:  # protobuf's DecodeError, or worse
            return _Garbage(message=message.DESCRIPTOR.full_name, size=len(data), reason=str(exc))

    return parse


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _TlsSetupError(f"tls.{key}: cannot read {path}: {exc.strerror or exc}") from None


def _credentials(tls: GrpcTls) -> Any:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.root_certs, "root_certs") if tls.root_certs else None,
        private_key=_read(tls.client_key, "client_key") if tls.client_key else None,
        certificate_chain=_read(tls.client_cert, "client_cert") if tls.client_cert else None,
    )


class GrpcStrategy:
    """Checks models over one lazily opened ``grpc.aio`` channel, shared by all of them.

    The channel is opened inside the running event loop on the first check
    (grpc.aio needs one) and closed by :meth:`aclose`. ``channels_created``
    counts the channels this instance opened, so sharing can be proven.
    """

    name = "grpc"

    def __init__(self, config: GrpcConfig) -> None:
        self.config = config
        # Read on first use, and again on every check until readable: a mounted secret
        # may appear after the config is applied, and one model's missing file must not
        # stop the others from starting.
        self._credentials: Any = None
        self._metadata = tuple((k, s.get_secret_value()) for k, s in config.metadata.items())
        # For the server's and grpc-core's text: a server may repeat the metadata it got
        # ("backend failed for Bearer ..."). Only upstream text is masked, never healthkit's
        # own words (a metadata value may be an ordinary word).
        self._mask = secret_masker(config.metadata)
        self._channel: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[str, Any] = {}
        self._closed = False
        self._result = ResultBuilder(self.name, endpoint=config.target)
        #: How many channels this instance has opened (one, unless used from another loop).
        self.channels_created = 0

    @classmethod
    def create(cls, config: GrpcConfig, context: StrategyContext) -> GrpcStrategy:
        return cls(config)

    @property
    def channel(self) -> Any:
        """The shared ``grpc.aio.Channel``, or ``None`` before the first check."""
        return self._channel

    def __repr__(self) -> str:
        tls = "tls" if self.config.tls is not None else "plaintext"
        return f"<GrpcStrategy {self.config.protocol} {self.config.target} {tls}>"

    # -- the channel ----------------------------------------------------------------

    def _open(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._channel is not None and self._loop is loop:
            return self._channel
        # A channel belongs to the loop it was opened in; a check from another loop (a sync
        # facade's private loop, say) gets its own. The old one dies with its loop.
        options = _channel_options(self.config)
        tls = self.config.tls
        if tls is None:
            channel = grpc.aio.insecure_channel(self.config.target, options=options)
        else:
            if self._credentials is None:
                self._credentials = _credentials(tls)
            channel = grpc.aio.secure_channel(
                self.config.target, self._credentials, options=options
            )
        self._channel, self._loop, self._calls = channel, loop, {}
        self.channels_created += 1
        return channel

    def _call(self, method: str) -> Any:
        call = self._calls.get(method)
        if call is None:
            request, response = CLIENT_METHODS[method]
            call = self._open().unary_unary(
                method,
                request_serializer=request.SerializeToString,
                response_deserializer=_lenient(response),
            )
            self._calls[method] = call
        return call

    async def _invoke(self, method: str, request: Any) -> Any:
        cfg = self.config
        self._open()
        async for attempt in retrying(cfg, retry=_retryable):
            with attempt:
                reply = await self._call(method)(
                    request, timeout=cfg.timeout, metadata=self._metadata or None
                )
        if isinstance(reply, _Garbage) or reply is None:
            call = method.rsplit("/", 1)[-1]
            if reply is None:
                raise _UnreadableReply(f"unreadable answer: the reply to {call} was empty")
            raise _UnreadableReply(
                f"unreadable answer: the reply to {call} ({reply.size} bytes) is not a valid"
                f" {reply.message} ({reply.reason or 'protobuf could not parse it'});"
                " is another service listening on this port?"
            )
        return reply

    # -- checks -----------------------------------------------------------------------

    async def acheck(self, target: Target) -> CheckResult:
        if self._closed:
            exc = ClosedError("grpc strategy is closed")
            return self._result(target, Status.UNHEALTHY, str(exc), ErrorInfo.from_exception(exc))
        try:
            if self.config.protocol == "health-v1":
                return await self._check_health(target)
            return await self._check_v2(target)
        except grpc.aio.AioRpcError as exc:
            return self._failure(target, exc)
        except _UnreadableReply as exc:
            # Not the server we expect behind this port: say so, not "'NoneType' has no 'status'".
            error = ErrorInfo(type="DecodeError", message=str(exc))
            return self._result(target, Status.UNHEALTHY, str(exc), error)
        except _TlsSetupError as exc:
            error = ErrorInfo.from_exception(exc)
            return self._result(target, Status.UNHEALTHY, f"TLS setup failed: {exc}", error)
        except Exception as exc:  # a failing check is a result, never a crash
            info = ErrorInfo.from_exception(exc)
            return self._result(
                target,
                Status.UNHEALTHY,
                f"check failed: {type(exc).__name__}: {self._mask(str(exc))}",
                attrs.evolve(info, message=self._mask(info.message)),
            )

    def _service_name(self, target: Target) -> str:
        return self.config.service_template.format(
            model=target.model or "", version=target.version or ""
        )

    async def _check_health(self, target: Target) -> CheckResult:
        service = self._service_name(target)
        try:
            reply = await self._invoke(HEALTH_CHECK, health_pb2.HealthCheckRequest(service=service))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return self._result(
                    target,
                    Status.UNHEALTHY,
                    f"service {service!r} is unknown to the server (NOT_FOUND)",
                    self._error(exc),
                )
            raise
        status, label = _SERVING.get(reply.status, (Status.UNKNOWN, f"status {reply.status}"))
        what = f"service {service!r}" if service else "server"
        return self._result(target, status, f"{what}: {label}")

    async def _check_v2(self, target: Target) -> CheckResult:
        if target.model is None:
            reply = await self._invoke(SERVER_READY, pb.ServerReadyRequest())
            if reply.ready:
                return self._result(target, Status.HEALTHY, "server ready")
            # Tell a server that is still starting from one that is gone wrong.
            try:
                live = (await self._invoke(SERVER_LIVE, pb.ServerLiveRequest())).live
            except grpc.aio.AioRpcError:
                return self._result(target, Status.UNHEALTHY, "server not ready")
            state = "live but not ready" if live else "not live"
            return self._result(target, Status.UNHEALTHY, f"server {state}")
        request = pb.ModelReadyRequest(name=target.model, version=target.version or "")
        try:
            reply = await self._invoke(MODEL_READY, request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return self._result(
                    target,
                    Status.UNHEALTHY,
                    f"model {target} not found (NOT_FOUND: {self._details(exc) or 'no details'})",
                    self._error(exc),
                )
            raise
        if reply.ready:
            return self._result(target, Status.HEALTHY, f"model {target} ready")
        return self._result(target, Status.UNHEALTHY, f"model {target} not ready")

    # -- results ------------------------------------------------------------------------

    def _failure(self, target: Target, exc: grpc.aio.AioRpcError) -> CheckResult:
        """A failed call in words an operator understands; grpc-core's text stays in ``error``."""
        code = exc.code()
        details = exc.details() or ""  # read, not shown: self._details(exc) is shown
        name = getattr(code, "name", str(code))
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            attempts = self.config.retries + 1
            tries = f" (each of {attempts} attempts)" if attempts > 1 else ""
            detail = f"deadline exceeded: no answer within {self.config.timeout:g}s{tries}"
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            health = self.config.protocol == "health-v1"
            service = "grpc.health.v1.Health" if health else "inference.GRPCInferenceService"
            detail = f"unimplemented: the server does not implement {service} (UNIMPLEMENTED)"
        elif code == grpc.StatusCode.UNAVAILABLE:
            kind, words = self._unavailable(details)
            detail = f"{kind} (UNAVAILABLE): {words}"
        else:
            shown = self._details(exc) or "no details from the server"
            detail = f"call failed ({name}): {shown}"
        return self._result(target, Status.UNHEALTHY, detail, self._error(exc))

    def _details(self, exc: grpc.aio.AioRpcError) -> str:
        """The call's details (the server's message, or grpc-core's), secrets masked."""
        return self._mask(exc.details() or "")

    def _error(self, exc: grpc.aio.AioRpcError) -> ErrorInfo:
        code = exc.code()
        return ErrorInfo(
            type=type(exc).__name__,
            message=f"{getattr(code, 'name', code)}: {self._details(exc) or 'no details'}",
        )

    def _unavailable(self, details: str) -> tuple[str, str]:
        """(kind, explanation) of an UNAVAILABLE call, from grpc-core's free-text details."""
        lowered = details.lower()
        where = self.config.target
        if any(w in lowered for w in _DNS_WORDS):
            # First: the host name itself is in these details, and may contain "tls" or "ssl".
            return "DNS failure", f"cannot resolve the host of {where!r}"
        if any(w in lowered for w in _CONNECT_TIMEOUT_WORDS):
            return (
                "connection timed out",
                f"no gRPC connection to {where} within {self.config.timeout:g}s"
                " (TCP, TLS and the HTTP/2 handshake must all finish within the timeout)",
            )
        if any(w in lowered for w in _NOT_HTTP2_WORDS):
            return (
                "not an HTTP/2 server",
                f"{where} answered, but not with gRPC: is it an HTTP/1 or REST port?",
            )
        if any(w in lowered for w in _TLS_WORDS):
            return "TLS failure", self._tls_words(details)
        reset = any(w in lowered for w in _RESET_WORDS)
        connecting = "failed to connect" in lowered
        if reset and connecting and self.config.tls is not None:
            # A TLS server that rejects the client (no client certificate, say) just hangs up.
            return (
                "TLS failure (connection closed during the handshake)",
                "the server hung up during the TLS handshake: does it want a client"
                " certificate (tls.client_cert and tls.client_key)?",
            )
        if reset and connecting:
            return (
                "connection reset",
                f"{where} closed the connection before the gRPC handshake finished"
                " (a TLS-only server does this to a plaintext client: set tls)",
            )
        if "goaway" in lowered or "cancelling all calls" in lowered:
            return "connection reset", "the server went away during the call (GOAWAY)"
        if reset:
            return "connection reset", "the connection was closed during the call"
        if any(w in lowered for w in _REFUSED_WORDS):
            return "connection refused", f"nothing accepts connections on {where}"
        shown = self._mask(details)
        return "unavailable", shown or "the server is unavailable (no details from grpc)"

    def _tls_words(self, details: str) -> str:
        tls = self.config.tls
        if tls is None:
            return f"TLS handshake failed: {self._mask(details)}"
        if "hostname verification" in details.lower():
            name = tls.server_name or self.config.target.rsplit(":", 1)[0]
            return (
                f"the server's certificate is not valid for {name!r}:"
                " set tls.server_name to a name the certificate holds"
            )
        verify = _VERIFY_REASON.search(details)
        if verify is not None:
            roots = tls.root_certs or "gRPC's default roots"
            return (
                f"the server's certificate is not trusted ({self._mask(verify.group(1).strip())}):"
                f" it is not signed by a CA in {roots} (tls.root_certs)"
            )
        reason = _SSL_REASON.search(details)
        if reason is not None and reason.group(1) == "WRONG_VERSION_NUMBER":
            return "the server does not speak TLS (a plaintext server?): set tls = false"
        if reason is not None:
            return f"TLS handshake failed ({self._mask(reason.group(1))})"
        return f"TLS handshake failed: {self._mask(details)}"

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the channel; idempotent. Checks after this report unhealthy."""
        self._closed = True
        channel, self._channel, self._calls = self._channel, None, {}
        loop, self._loop = self._loop, None
        if channel is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            await channel.close(grace=None)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _RETRYABLE
