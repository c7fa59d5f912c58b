"""Client TLS contexts, built once per distinct set of settings and shared."""

from __future__ import annotations

import os
import ssl
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["no_tls_context", "tls_context"]


# Contexts by settings, held weakly: one lives as long as an instance uses it, so nothing is
# kept for configs that are gone, and a reload after a certificate rotation (the files'
# size/mtime/inode are in the key) builds a fresh one.
_contexts: weakref.WeakValueDictionary[tuple[Any, ...], ssl.SSLContext] = (
    weakref.WeakValueDictionary()
)
_contexts_lock = threading.Lock()


def _file_key(path: str | None) -> tuple[Any, ...] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (path,)  # building will fail and say why; nothing is cached then
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _tls_files(ca_bundle: str | None, client_cert: str | None, client_key: str | None) -> str:
    files = {"ca_bundle": ca_bundle, "client_cert": client_cert, "client_key": client_key}
    return ", ".join(f"{k}={v!r}" for k, v in files.items() if v) or "system CAs"


def _build(
    verify: bool, ca_bundle: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    try:
        if verify:
            ctx = ssl.create_default_context(cafile=ca_bundle)
        else:
            # Nothing is verified, so no CA is loaded (loading the system's costs the most).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        # ssl's own errors do not name the file ("[Errno 2] No such file or directory").
        where = _tls_files(ca_bundle, client_cert, client_key)
        raise ValueError(f"TLS setup failed ({where}): {exc}") from exc
    return ctx


def _shared(key: tuple[Any, ...], build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    # Per thread: a client library may set options on the context at every connection
    # (httpcore sets ALPN), which must not race with a handshake on another thread
    # (isolation = "thread" runs instances on worker threads).
    key = (threading.get_ident(), *key)
    with _contexts_lock:
        ctx = _contexts.get(key)
    if ctx is None:
        ctx = build()
        with _contexts_lock:
            ctx = _contexts.setdefault(key, ctx)
    return ctx


def tls_context(
    *,
    verify: bool = True,
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """A client ``ssl.SSLContext``, shared with every caller that asks for the same settings.

    ``verify`` checks the server's certificate and name against ``ca_bundle``
    (a PEM file), else the system's CAs; ``client_cert`` (and ``client_key``
    when the key is in another file) is presented for mutual TLS. A file that
    cannot be read raises ``ValueError`` naming it. Treat the context as
    read-only: others share it.
    """
    key = (
        "tls",
        verify,
        _file_key(ca_bundle) if verify else None,
        _file_key(client_cert),
        _file_key(client_key),
    )
    return _shared(
        key, lambda: _build(verify, ca_bundle if verify else None, client_cert, client_key)
    )


def _no_tls() -> ssl.SSLContext:
    # Verifies, and trusts no CA: an https request made through it by mistake fails, loudly.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def no_tls_context() -> ssl.SSLContext:
    """The shared context for a client that never speaks TLS (an ``http://`` upstream).

    httpx builds a context for every client unless given one; this one costs
    next to nothing. It trusts no CA, so an ``https`` request made through it
    fails certificate verification rather than passing unverified.
    """
    return _shared(("none",), _no_tls)
