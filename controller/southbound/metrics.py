"""Prometheus metrics of the southbound: per-class counters as the agents last reported them, and
the agents' state. Raw series go to an existing time-series system; the controller stores only
per-customer usage (ARCHITECTURE.md, "Telemetry")."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.southbound.server import Southbound


class SouthboundCollector(Collector):
    def __init__(self, southbound: Southbound) -> None:
        self.southbound = southbound

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["router", "interface", "class"]
        octets = CounterMetricFamily("csmm_class_octets", "Octets sent through a QoS class (HTB), as the agent reads them", labels=labels)
        packets = CounterMetricFamily("csmm_class_packets", "Packets sent through a QoS class", labels=labels)
        drops = CounterMetricFamily("csmm_class_drops", "Packets a QoS class dropped", labels=labels)
        overlimits = CounterMetricFamily("csmm_class_overlimits", "Times a QoS class was over its rate", labels=labels)
        connected = GaugeMetricFamily("csmm_agent_connected", "1 when the router's agent holds a session", labels=["router"])
        in_sync = GaugeMetricFamily("csmm_agent_config_in_sync",
                                    "1 when the agent acknowledged the newest config sent to it", labels=["router"])
        for router, session in sorted(self.southbound.sessions.items()):
            connected.add_metric([router], 1)
            synced = session.sent is not None and session.acked_version == session.sent.version
            in_sync.add_metric([router], 1 if synced else 0)
            for (interface, name), sample in sorted(session.counters.items()):
                octets.add_metric([router, interface, name], sample.bytes)
                packets.add_metric([router, interface, name], sample.packets)
                drops.add_metric([router, interface, name], sample.drops)
                overlimits.add_metric([router, interface, name], sample.overlimits)
        yield from (octets, packets, drops, overlimits, connected, in_sync)
