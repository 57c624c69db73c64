"""Declarative provisioning (`csmm apply`): topology, customers and SLAs from a YAML file."""
