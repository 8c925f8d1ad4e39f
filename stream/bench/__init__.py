"""``leadstream bench``: throughput, latency, recovery and state size on the real broker.

Every figure is measured in one run against baselines on the same broker and the same data
(``stream.bench.baselines``), because the machines it runs on are shared and noisy: the ratios
are the figures to read. ``stream.bench.run`` orchestrates the measurements; ``stream.bench.data``
makes and loads the traffic.
"""
