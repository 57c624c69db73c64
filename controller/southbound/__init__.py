"""The southbound side: the controller's end of the agent protocol (gRPC server and its messages)."""
