"""The ``grpc`` strategy: one grpc.aio channel for every model that shares a config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import tenacity
from grpc_health.v1 import health_pb2

from ..._errors import ClosedError
from ..._result import CheckResult, ErrorInfo, Target
from ..._status import Status
from ..._strategy import StrategyContext
from ._config import GrpcConfig, GrpcTls
from ._oip import CLIENT_METHODS, HEALTH_CHECK, MODEL_READY, SERVER_LIVE, SERVER_READY, pb

__all__ = ["GrpcStrategy"]

_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

#: grpc-core backs off up to two minutes between reconnects by default, so a predictor
#: that comes back would look down for that long; a health check wants to notice soon.
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # tenacity alone decides about retries, with the limits of the config.
    ("grpc.enable_retries", 0),
)

# grpc-core reports these as UNAVAILABLE; its details say which, in free text.
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

_SERVING = {
    health_pb2.HealthCheckResponse.SERVING: (Status.HEALTHY, "SERVING"),
    health_pb2.HealthCheckResponse.NOT_SERVING: (Status.UNHEALTHY, "NOT_SERVING"),
    health_pb2.HealthCheckResponse.UNKNOWN: (Status.UNKNOWN, "UNKNOWN"),
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: (Status.UNKNOWN, "SERVICE_UNKNOWN"),
}


class _TlsSetupError(Exception):
    """A certificate file of the ``tls`` table cannot be read."""


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
        self._channel: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[str, Any] = {}
        self._closed = False
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
        options = list(_CHANNEL_OPTIONS)
        tls = self.config.tls
        if tls is not None and tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
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
                response_deserializer=response.FromString,
            )
            self._calls[method] = call
        return call

    async def _invoke(self, method: str, request: Any) -> Any:
        cfg = self.config
        self._open()
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(cfg.retries + 1),
            # Exponential from ``backoff`` up to ``backoff_max``, plus up to one ``backoff`` of
            # jitter (wait_exponential_jitter's default jitter is a whole second).
            wait=tenacity.wait_exponential(multiplier=cfg.backoff, max=cfg.backoff_max)
            + tenacity.wait_random(0, cfg.backoff),
            retry=tenacity.retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._call(method)(
                    request, timeout=cfg.timeout, metadata=self._metadata or None
                )
        raise AssertionError("unreachable: tenacity either returns or reraises")

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
        except _TlsSetupError as exc:
            error = ErrorInfo.from_exception(exc)
            return self._result(target, Status.UNHEALTHY, f"TLS setup failed: {exc}", error)
        except Exception as exc:  # a failing check is a result, never a crash
            return self._result(
                target,
                Status.UNHEALTHY,
                f"check failed: {type(exc).__name__}: {exc}",
                ErrorInfo.from_exception(exc),
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
                    _error(exc),
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
                    f"model {target} not found (NOT_FOUND: {exc.details() or 'no details'})",
                    _error(exc),
                )
            raise
        if reply.ready:
            return self._result(target, Status.HEALTHY, f"model {target} ready")
        return self._result(target, Status.UNHEALTHY, f"model {target} not ready")

    # -- results ------------------------------------------------------------------------

    def _result(
        self, target: Target, status: Status, detail: str, error: ErrorInfo | None = None
    ) -> CheckResult:
        return CheckResult(
            status=status, strategy=self.name, target=target, detail=detail, error=error
        )

    def _failure(self, target: Target, exc: grpc.aio.AioRpcError) -> CheckResult:
        code = exc.code()
        details = exc.details() or ""
        lowered = details.lower()
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
            detail = f"{self._unavailable_kind(lowered)} (UNAVAILABLE): {details}"
        else:
            detail = f"call failed ({name}): {details}"
        return self._result(target, Status.UNHEALTHY, detail, _error(exc))

    def _unavailable_kind(self, details: str) -> str:
        if any(w in details for w in _TLS_WORDS):
            return "TLS failure"
        reset = any(w in details for w in _RESET_WORDS)
        if reset and self.config.tls is not None and "failed to connect" in details:
            # A TLS server that rejects the client (no client certificate, say) just hangs up.
            return "TLS failure (connection closed during the handshake)"
        if reset:
            return "connection reset"
        if any(w in details for w in _REFUSED_WORDS):
            return "connection refused"
        return "unavailable"

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


def _error(exc: grpc.aio.AioRpcError) -> ErrorInfo:
    code = exc.code()
    return ErrorInfo(
        type=type(exc).__name__,
        message=f"{getattr(code, 'name', code)}: {exc.details() or 'no details'}",
    )
