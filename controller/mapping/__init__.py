"""The mapping function: the joint SLSs of all customers -> one device-neutral QoS config per router."""

from controller.mapping.model import InterfaceQos, QosClass, RouterQos
from controller.mapping.render import render_router_configs

__all__ = ["InterfaceQos", "QosClass", "RouterQos", "render_router_configs"]
