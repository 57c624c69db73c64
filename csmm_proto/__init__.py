"""Generated code of the agent protocol (proto/csmm_proto/agent.proto). Do not edit: run scripts/gen-proto."""
