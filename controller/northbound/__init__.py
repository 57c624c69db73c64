"""Northbound adapters: SNMP, NETCONF and web/REST. Each parses its protocol, calls the service layer
and renders the answer; none holds a business rule."""
