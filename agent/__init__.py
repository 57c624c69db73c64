"""The router agent. It never imports the controller: it speaks the agent protocol (csmm_proto)."""

__version__ = "0.1.0"
