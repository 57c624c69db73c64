"""CSMM: the Customer Service Management Module for the GSB DiffServ transport service."""

__version__ = "0.1.0"
