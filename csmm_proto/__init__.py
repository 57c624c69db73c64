"""The agent protocol (proto/csmm_proto/agent.proto), shared by the controller and the agent.

agent_pb2*.py are generated: do not edit them, run scripts/gen-proto. configs.py is written by
hand: the protocol's rules for configs (fingerprint, diff, applying a diff), which both ends must
compute identically.
"""
