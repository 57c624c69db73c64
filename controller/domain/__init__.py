"""The pure domain: catalog, topology, SLA/SLS values and the checking function.

Nothing in this package does I/O or imports a protocol or database library; the store and
the service layer feed it values and act on its verdicts.
"""
