"""``mdp bench``: the end-to-end benchmark, kept apart from the demo.

:mod:`~mdp_platform.bench.run` drives a run; :mod:`~mdp_platform.bench.config` holds its
configuration, :mod:`~mdp_platform.bench.services` and :mod:`~mdp_platform.bench.processes` the
child processes, :mod:`~mdp_platform.bench.simulator` the simulator process,
:mod:`~mdp_platform.bench.clients` the websocket clients, :mod:`~mdp_platform.bench.drain` the
proof of catching up, :mod:`~mdp_platform.bench.board` and :mod:`~mdp_platform.bench.check` the
independent recomputation, :mod:`~mdp_platform.bench.stats` and
:mod:`~mdp_platform.bench.report` the figures, :mod:`~mdp_platform.bench.broker` the broker's
own counters. Nothing is imported here, so the simulator child
(``python -m mdp_platform.bench.simulator``) loads only what it uses.
"""
