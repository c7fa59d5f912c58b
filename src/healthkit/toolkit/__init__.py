"""Building blocks for strategy authors: results, retries, TLS contexts, the declared deadline.

The built-in strategies and the bundled plugins use these; a plugin may too
(plugins must not import healthkit's private modules). Each piece is small and
does one thing:

- :class:`ResultBuilder` turns (target, status, detail, exception) into a
  :class:`~healthkit.CheckResult` carrying the strategy's name, optionally
  masking secrets an upstream echoed back;
- :func:`retrying` is the retry policy of one check on tenacity (exponential
  backoff from ``backoff`` up to ``backoff_max``, plus up to ``backoff`` of
  jitter), and :func:`retry_deadline` the matching ``check_deadline`` (see
  :class:`~healthkit.DeadlineConfig`), so the monitor's hard cap covers every
  attempt and pause;
- :func:`tls_context` builds an ``ssl.SSLContext`` once per distinct set of TLS
  settings and shares it between instances (a context with the system's CAs
  costs tens of milliseconds and most of a megabyte); :func:`no_tls_context`
  is the shared stand-in for a client that never speaks TLS;
- :func:`http_client` is an ``httpx.AsyncClient`` set up as healthkit's own
  strategies use theirs (one request per connection at a time, the rest
  waiting in turn; no redirects, nothing from the environment);
  :func:`fetch` sends one request that ends by one deadline, head and body
  alike, and reads a capped body; :func:`http_failure` says in words why a
  request got no HTTP answer;
- :func:`secret_masker` masks a config's secrets in text an upstream sent,
  and :func:`printable` / :func:`excerpt` make such text safe and short to show
  (no terminal escapes, no bytes reprs);
- :class:`FrozenMap` is the hashable mapping a config converter returns for a
  table (a plain dict would stop equal configs from sharing an instance), and
  :func:`guarded_check` runs one ``acheck`` as healthkit does (exceptions, hangs
  and garbage become ``unhealthy`` results), for a plugin's tests.
"""

# One module per job; this package only gathers the public names. Importing it loads neither
# httpx nor tenacity: the helpers that need them import them when first called.
from .._frozen import FrozenMap
from .._guard import guarded_check
from ._http import HttpReply, fetch, http_client, http_failure
from ._results import ResultBuilder
from ._retry import RetrySettings, retry_deadline, retrying
from ._text import excerpt, printable, secret_masker
from ._tls import no_tls_context, tls_context

__all__ = [
    "FrozenMap",
    "HttpReply",
    "ResultBuilder",
    "RetrySettings",
    "excerpt",
    "fetch",
    "guarded_check",
    "http_client",
    "http_failure",
    "no_tls_context",
    "printable",
    "retry_deadline",
    "retrying",
    "secret_masker",
    "tls_context",
]
