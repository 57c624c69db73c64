"""The SNMP northbound: the CSM-MIB compiled for pysnmp, and (issue 5) the SNMPv3 agent serving it."""
