"""The web northbound: the REST/JSON API (issue 9; today: SLAs, SLS, conformance, invoices)."""
