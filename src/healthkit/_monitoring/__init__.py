"""The monitor's parts, one job each; :class:`healthkit._monitor.Monitor` composes them.

Layers, lowest first (a module imports only from layers below it):

* ``_records`` (public records), ``_thresholds`` (the pure readiness state
  machine) and ``_outage`` (the pure per-instance outage rule);
* ``_models`` (per-model state, the spec index, transitions);
* ``_runner`` (jobs under one in-flight budget, deadlines, loop-lag accounting);
* ``_checks`` (single-flight, the result cache, the cap on client-chosen targets);
* ``_scheduler`` (the heap of due probes, jitter, batch grouping, parking);
* ``_verdicts`` (acting on the outage detector's verdicts) and ``_reload``
  (applying a reloaded config).
"""
