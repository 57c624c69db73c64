from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("hello", "apply_result", "counters", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    APPLY_RESULT_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    apply_result: ApplyResult
    counters: Counters
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., apply_result: _Optional[_Union[ApplyResult, _Mapping]] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("router_id", "agent_version", "capabilities", "interfaces", "boot_epoch", "applied_version", "applied_fingerprint")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    BOOT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    APPLIED_VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    agent_version: str
    capabilities: KernelCapabilities
    interfaces: _containers.RepeatedCompositeFieldContainer[InterfaceInfo]
    boot_epoch: int
    applied_version: int
    applied_fingerprint: str
    def __init__(self, router_id: _Optional[str] = ..., agent_version: _Optional[str] = ..., capabilities: _Optional[_Union[KernelCapabilities, _Mapping]] = ..., interfaces: _Optional[_Iterable[_Union[InterfaceInfo, _Mapping]]] = ..., boot_epoch: _Optional[int] = ..., applied_version: _Optional[int] = ..., applied_fingerprint: _Optional[str] = ...) -> None: ...

class KernelCapabilities(_message.Message):
    __slots__ = ("qdiscs", "classifiers", "actions", "nftables")
    QDISCS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIERS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    NFTABLES_FIELD_NUMBER: _ClassVar[int]
    qdiscs: _containers.RepeatedScalarFieldContainer[str]
    classifiers: _containers.RepeatedScalarFieldContainer[str]
    actions: _containers.RepeatedScalarFieldContainer[str]
    nftables: bool
    def __init__(self, qdiscs: _Optional[_Iterable[str]] = ..., classifiers: _Optional[_Iterable[str]] = ..., actions: _Optional[_Iterable[str]] = ..., nftables: _Optional[bool] = ...) -> None: ...

class InterfaceInfo(_message.Message):
    __slots__ = ("name", "speed_bps", "up")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEED_BPS_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    name: str
    speed_bps: int
    up: bool
    def __init__(self, name: _Optional[str] = ..., speed_bps: _Optional[int] = ..., up: _Optional[bool] = ...) -> None: ...

class ApplyResult(_message.Message):
    __slots__ = ("version", "fingerprint", "ok", "errors")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    version: int
    fingerprint: str
    ok: bool
    errors: _containers.RepeatedCompositeFieldContainer[ApplyError]
    def __init__(self, version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., ok: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[ApplyError, _Mapping]]] = ...) -> None: ...

class ApplyError(_message.Message):
    __slots__ = ("interface", "item", "message")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    interface: str
    item: str
    message: str
    def __init__(self, interface: _Optional[str] = ..., item: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("boot_epoch", "layout", "keys", "bytes", "packets", "drops", "overlimits", "timestamp_ns")
    BOOT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    OVERLIMITS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    boot_epoch: int
    layout: int
    keys: _containers.RepeatedCompositeFieldContainer[ClassKey]
    bytes: bytes
    packets: bytes
    drops: bytes
    overlimits: bytes
    timestamp_ns: bytes
    def __init__(self, boot_epoch: _Optional[int] = ..., layout: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[ClassKey, _Mapping]]] = ..., bytes: _Optional[bytes] = ..., packets: _Optional[bytes] = ..., drops: _Optional[bytes] = ..., overlimits: _Optional[bytes] = ..., timestamp_ns: _Optional[bytes] = ...) -> None: ...

class ClassKey(_message.Message):
    __slots__ = ("interface", "class_name")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    interface: str
    class_name: str
    def __init__(self, interface: _Optional[str] = ..., class_name: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at_ns",)
    SENT_AT_NS_FIELD_NUMBER: _ClassVar[int]
    sent_at_ns: int
    def __init__(self, sent_at_ns: _Optional[int] = ...) -> None: ...

class ControllerMessage(_message.Message):
    __slots__ = ("config", "diff", "parameters", "heartbeat")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    config: DesiredConfig
    diff: ConfigDiff
    parameters: SessionParameters
    heartbeat: Heartbeat
    def __init__(self, config: _Optional[_Union[DesiredConfig, _Mapping]] = ..., diff: _Optional[_Union[ConfigDiff, _Mapping]] = ..., parameters: _Optional[_Union[SessionParameters, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class SessionParameters(_message.Message):
    __slots__ = ("counter_interval_ms", "heartbeat_interval_ms")
    COUNTER_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    counter_interval_ms: int
    heartbeat_interval_ms: int
    def __init__(self, counter_interval_ms: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class DesiredConfig(_message.Message):
    __slots__ = ("router_id", "version", "fingerprint", "interfaces")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    version: int
    fingerprint: str
    interfaces: _containers.RepeatedCompositeFieldContainer[InterfaceQos]
    def __init__(self, router_id: _Optional[str] = ..., version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., interfaces: _Optional[_Iterable[_Union[InterfaceQos, _Mapping]]] = ...) -> None: ...

class ConfigDiff(_message.Message):
    __slots__ = ("router_id", "base_version", "version", "fingerprint", "interfaces")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    base_version: int
    version: int
    fingerprint: str
    interfaces: _containers.RepeatedCompositeFieldContainer[InterfaceDiff]
    def __init__(self, router_id: _Optional[str] = ..., base_version: _Optional[int] = ..., version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., interfaces: _Optional[_Iterable[_Union[InterfaceDiff, _Mapping]]] = ...) -> None: ...

class InterfaceDiff(_message.Message):
    __slots__ = ("name", "upsert_classes", "remove_classes", "upsert_prefix_matches", "remove_prefix_matches", "upsert_dscp_matches", "remove_dscp_matches", "upsert_remarks", "remove_remarks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPSERT_CLASSES_FIELD_NUMBER: _ClassVar[int]
    REMOVE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    UPSERT_PREFIX_MATCHES_FIELD_NUMBER: _ClassVar[int]
    REMOVE_PREFIX_MATCHES_FIELD_NUMBER: _ClassVar[int]
    UPSERT_DSCP_MATCHES_FIELD_NUMBER: _ClassVar[int]
    REMOVE_DSCP_MATCHES_FIELD_NUMBER: _ClassVar[int]
    UPSERT_REMARKS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_REMARKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    upsert_classes: _containers.RepeatedCompositeFieldContainer[QosClass]
    remove_classes: _containers.RepeatedScalarFieldContainer[str]
    upsert_prefix_matches: _containers.RepeatedCompositeFieldContainer[PrefixMatch]
    remove_prefix_matches: _containers.RepeatedScalarFieldContainer[str]
    upsert_dscp_matches: _containers.RepeatedCompositeFieldContainer[DscpMatch]
    remove_dscp_matches: _containers.RepeatedScalarFieldContainer[int]
    upsert_remarks: _containers.RepeatedCompositeFieldContainer[Remark]
    remove_remarks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., upsert_classes: _Optional[_Iterable[_Union[QosClass, _Mapping]]] = ..., remove_classes: _Optional[_Iterable[str]] = ..., upsert_prefix_matches: _Optional[_Iterable[_Union[PrefixMatch, _Mapping]]] = ..., remove_prefix_matches: _Optional[_Iterable[str]] = ..., upsert_dscp_matches: _Optional[_Iterable[_Union[DscpMatch, _Mapping]]] = ..., remove_dscp_matches: _Optional[_Iterable[int]] = ..., upsert_remarks: _Optional[_Iterable[_Union[Remark, _Mapping]]] = ..., remove_remarks: _Optional[_Iterable[str]] = ...) -> None: ...

class InterfaceQos(_message.Message):
    __slots__ = ("name", "role", "remarks", "default_dscp", "scheduler")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REMARKS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_DSCP_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    remarks: _containers.RepeatedCompositeFieldContainer[Remark]
    default_dscp: int
    scheduler: Scheduler
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., remarks: _Optional[_Iterable[_Union[Remark, _Mapping]]] = ..., default_dscp: _Optional[int] = ..., scheduler: _Optional[_Union[Scheduler, _Mapping]] = ...) -> None: ...

class Remark(_message.Message):
    __slots__ = ("prefix", "sla", "dscp")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    DSCP_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    sla: str
    dscp: int
    def __init__(self, prefix: _Optional[str] = ..., sla: _Optional[str] = ..., dscp: _Optional[int] = ...) -> None: ...

class Scheduler(_message.Message):
    __slots__ = ("capacity_bps", "classes", "by_prefix", "by_dscp", "default_leaf")
    CAPACITY_BPS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    BY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    BY_DSCP_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LEAF_FIELD_NUMBER: _ClassVar[int]
    capacity_bps: int
    classes: _containers.RepeatedCompositeFieldContainer[QosClass]
    by_prefix: _containers.RepeatedCompositeFieldContainer[PrefixMatch]
    by_dscp: _containers.RepeatedCompositeFieldContainer[DscpMatch]
    default_leaf: str
    def __init__(self, capacity_bps: _Optional[int] = ..., classes: _Optional[_Iterable[_Union[QosClass, _Mapping]]] = ..., by_prefix: _Optional[_Iterable[_Union[PrefixMatch, _Mapping]]] = ..., by_dscp: _Optional[_Iterable[_Union[DscpMatch, _Mapping]]] = ..., default_leaf: _Optional[str] = ...) -> None: ...

class QosClass(_message.Message):
    __slots__ = ("name", "parent", "rate_bps", "ceil_bps", "priority", "members")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    CEIL_BPS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parent: str
    rate_bps: int
    ceil_bps: int
    priority: int
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., parent: _Optional[str] = ..., rate_bps: _Optional[int] = ..., ceil_bps: _Optional[int] = ..., priority: _Optional[int] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class PrefixMatch(_message.Message):
    __slots__ = ("prefix", "sla", "leaf")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    sla: str
    leaf: str
    def __init__(self, prefix: _Optional[str] = ..., sla: _Optional[str] = ..., leaf: _Optional[str] = ...) -> None: ...

class DscpMatch(_message.Message):
    __slots__ = ("dscp", "leaf")
    DSCP_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    dscp: int
    leaf: str
    def __init__(self, dscp: _Optional[int] = ..., leaf: _Optional[str] = ...) -> None: ...
