"""What the server says about its own schema: ietf-yang-library (RFC 8525), the schema list of
ietf-netconf-monitoring (RFC 6022) with <get-schema>, and with-defaults (RFC 6243).

The module texts served are the files in yang/: csm-service, and the IETF modules it imports
(shipped in yang/ietf/, as mib/ ships the MIB modules the CSM-MIB imports).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from .rpc import CSM, CSM_MODULE, CSM_REVISION, RpcError

YANG_DIR = Path(__file__).resolve().parents[3] / "yang"
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
LIBRARY = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
WITH_DEFAULTS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
# csm-service has no leaf with a default: every with-defaults mode returns the same data.
WITH_DEFAULTS_CAPABILITY = ("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit"
                            "&also-supported=report-all,report-all-tagged,trim")
WITH_DEFAULTS_MODES = ("report-all", "report-all-tagged", "trim", "explicit")


@dataclass(frozen=True)
class Module:
    name: str
    revision: str
    namespace: str
    path: Path
    implemented: bool  # False: imported only (its types are used)


MODULES = (
    Module(CSM_MODULE, CSM_REVISION, CSM, YANG_DIR / f"{CSM_MODULE}.yang", True),
    Module("ietf-yang-types", "2013-07-15", "urn:ietf:params:xml:ns:yang:ietf-yang-types",
           YANG_DIR / "ietf" / "ietf-yang-types.yang", False),
    Module("ietf-inet-types", "2013-07-15", "urn:ietf:params:xml:ns:yang:ietf-inet-types",
           YANG_DIR / "ietf" / "ietf-inet-types.yang", False),
)


@cache
def content_id() -> str:
    """Changes whenever a served module text changes (RFC 8525 content-id)."""
    digest = hashlib.sha256()
    for module in MODULES:
        digest.update(module.path.read_bytes())
    return digest.hexdigest()[:16]


def library_capability() -> str:
    return f"urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id={content_id()}"


def yang_library() -> etree._Element:
    """/yang-library: one module set, one schema, the running datastore."""
    ns = f"{{{LIBRARY}}}"
    root = etree.Element(ns + "yang-library",
                         nsmap={None: LIBRARY, "ds": "urn:ietf:params:xml:ns:yang:ietf-datastores"})
    module_set = etree.SubElement(root, ns + "module-set")
    etree.SubElement(module_set, ns + "name").text = "csm"
    for module in MODULES:
        entry = etree.SubElement(module_set, ns + ("module" if module.implemented else "import-only-module"))
        etree.SubElement(entry, ns + "name").text = module.name
        etree.SubElement(entry, ns + "revision").text = module.revision
        etree.SubElement(entry, ns + "namespace").text = module.namespace
    schema = etree.SubElement(root, ns + "schema")
    etree.SubElement(schema, ns + "name").text = "csm"
    etree.SubElement(schema, ns + "module-set").text = "csm"
    datastore = etree.SubElement(root, ns + "datastore")
    etree.SubElement(datastore, ns + "name").text = "ds:running"
    etree.SubElement(datastore, ns + "schema").text = "csm"
    etree.SubElement(root, ns + "content-id").text = content_id()
    return root


def netconf_state(capabilities: tuple[str, ...]) -> etree._Element:
    """/netconf-state: the capabilities and the schemas <get-schema> serves."""
    ns = f"{{{MONITORING}}}"
    root = etree.Element(ns + "netconf-state", nsmap={None: MONITORING})
    listed = etree.SubElement(root, ns + "capabilities")
    for capability in capabilities:
        etree.SubElement(listed, ns + "capability").text = capability
    schemas = etree.SubElement(root, ns + "schemas")
    for module in MODULES:
        schema = etree.SubElement(schemas, ns + "schema")
        etree.SubElement(schema, ns + "identifier").text = module.name
        etree.SubElement(schema, ns + "version").text = module.revision
        etree.SubElement(schema, ns + "format").text = "yang"
        etree.SubElement(schema, ns + "namespace").text = module.namespace
        etree.SubElement(schema, ns + "location").text = "NETCONF"
    return root


def get_schema(operation: etree._Element) -> etree._Element:
    """<get-schema>: the text of a served module (RFC 6022 3.1)."""
    ns = f"{{{MONITORING}}}"
    identifier = (operation.findtext(ns + "identifier") or "").strip()
    version = (operation.findtext(ns + "version") or "").strip()
    schema_format = (operation.findtext(ns + "format") or "yang").strip().rpartition(":")[2]
    if not identifier:
        raise RpcError("missing-element", "get-schema needs an identifier", error_type="protocol",
                       info={"bad-element": "identifier"})
    if schema_format != "yang":
        raise RpcError("invalid-value", f"only the yang format is served, not {schema_format}", error_type="protocol",
                       info={"bad-element": "format"})
    found = [m for m in MODULES if m.name == identifier and (not version or m.revision == version)]
    if not found:
        raise RpcError("invalid-value", f"no schema {identifier!r}" + (f" at version {version}" if version else ""),
                       error_type="protocol", info={"bad-element": "identifier"})
    data = etree.Element(ns + "data", nsmap={None: MONITORING})
    data.text = found[0].path.read_text()
    return data


def check_with_defaults(operation: etree._Element) -> None:
    mode = operation.findtext(f"{{{WITH_DEFAULTS}}}with-defaults")
    if mode is not None and mode.strip() not in WITH_DEFAULTS_MODES:
        raise RpcError("invalid-value", f"with-defaults must be one of {', '.join(WITH_DEFAULTS_MODES)}",
                       error_type="protocol", info={"bad-element": "with-defaults"})
