"""Loading and validating configs, in layers; :mod:`healthkit._config` is the facade.

- ``_source``: reading a file, decoding it, and refusing documents that are
  cyclic, too deep or that YAML aliases blow up;
- ``_env``: ``${VAR}`` interpolation, and which values came from the environment;
- ``_structure``: the generic engine that turns raw tables into attrs records,
  collecting every issue with its path;
- ``_history``: the ``[history]`` section (``HistoryConfig``) and durations;
- ``_notifiers``: the ``[[notifiers]]`` entries, as ``healthkit._notifier`` records;
- ``_schema``: the records of a config (``ServerConfig``, ``ModelConfig``) and the
  strategy-aware parser of ``health_check`` tables;
- ``_inherit``: how a model's ``health_check`` inherits the default one;
- ``_load``: ``load_config`` and ``parse_spec``, which put the layers together;
- ``_render``: ``describe_spec``, a spec as JSON-ready data with its secrets masked.

Each layer imports only the ones listed above it.
"""
