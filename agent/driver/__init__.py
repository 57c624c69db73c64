"""Drivers turn the device-neutral config into one kind of router's configuration."""
