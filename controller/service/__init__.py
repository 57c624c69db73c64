"""The service layer: the one API every adapter (CLI, SNMP, NETCONF, web) calls with a principal."""

from controller.service.events import Event, EventBus
from controller.service.layer import ServiceLayer, SlaSpec, SlsChange

__all__ = ["Event", "EventBus", "ServiceLayer", "SlaSpec", "SlsChange"]
