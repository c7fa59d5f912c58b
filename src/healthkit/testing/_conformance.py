"""The conformance suite every strategy plugin can run: subclass :class:`StrategyConformance`.

The suite is assembled from one module per concern: ``_suite`` (settings,
fixtures, helpers), ``_config_tests``, ``_check_tests``, ``_close_tests`` and
``_secret_tests``.
"""

from __future__ import annotations

from ._check_tests import CheckTests
from ._close_tests import CloseTests
from ._config_tests import ConfigTests
from ._secret_tests import SecretTests
from ._suite import BadConfig

__all__ = ["BadConfig", "StrategyConformance"]


class StrategyConformance(ConfigTests, CheckTests, CloseTests, SecretTests):
    """The conformance suite of one strategy. Subclass it in a module named ``test_*.py``.

    Set ``strategy`` to the registered name and override the fixtures:

    ``valid_config`` (required)
        The keys of a working ``health_check`` table (``strategy`` may be left out).
    ``bad_configs`` (required)
        :class:`BadConfig` variants that must fail, each with the path of its error.
    ``target``
        The :class:`~healthkit.Target` checked with the valid config; default model ``conformance``.
    ``expected_status``
        The status a check of ``target`` must report with the valid config (``None``: any).
    ``failing_config``
        A config whose check must fail (a closed port, a failing command), or ``None``.
    ``unresponsive_config``
        A config whose check never answers (``healthkit_silent_server`` helps), for
        the timeout tests. Required when the config has a ``timeout`` key; ``None``
        declares that a check cannot block.
    ``secrets``
        Secret strings the configs above contain (or set in the environment); none
        of them may appear in reprs, results, errors or logs. Required when the
        config has a :class:`~healthkit.Secret` or :class:`~healthkit.SecretUrl` field.
    ``registry``
        Where the strategy comes from; default: built-ins plus installed entry points,
        which is how users get it.

    Class attributes tune it (see ``SuiteBase``): ``short_timeout``,
    ``deadline_slack``, ``release_timeout``, ``hang_limit``, ``loop_block_limit``
    and ``accepts_any_value``.
    """
