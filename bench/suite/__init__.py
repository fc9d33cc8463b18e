"""wirehub's benchmark suite: wirehub beside bare baselines, one generator, one run, one report.

``python -m bench.suite`` (see ``__main__``) runs every scenario of ``scenarios`` against each of
its servers (``servers``) with the Node load generator in ``bench/node`` (``generator``), several
repetitions, fresh server processes each time; ``summary`` takes medians and ratios, and
``report`` and ``chart`` write ``docs/performance.md`` and ``docs/performance.png``.
"""
