"""Usage records: volume per SLA and class over an interval, named with IPFIX information elements
(RFC 7012: octetDeltaCount, packetDeltaCount, droppedPacketDeltaCount, ipDiffServCodePoint,
flowStartMilliseconds, flowEndMilliseconds).

Two writers: the controller's own meter, which adds each counter report's deltas to the record of
the SLA, class and hour (a replayed counter report adds nothing: the southbound's counter marks
turn it into a zero delta), and `import_records`, for records from another meter, where a record
replayed twice is counted once (its key: source, SLA, DSCP, start and end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controller.accounting.metering import MS_PER_HOUR, UTC, iso
from controller.domain.errors import InvalidValue
from controller.store.schema import SlaRow, UsageRecordRow

METER = "meter"
IPFIX_FIELDS = ("octetDeltaCount", "packetDeltaCount", "ipDiffServCodePoint", "flowStartMilliseconds",
                "flowEndMilliseconds")


class Counted(Protocol):
    octets: int
    packets: int
    drops: int


@dataclass(frozen=True)
class UsageRecord:
    source: str
    sla: str
    service_class: str
    dscp: int
    flow_start_ms: int
    flow_end_ms: int
    octets: int
    packets: int
    dropped_packets: int = 0

    def to_ipfix(self) -> dict[str, Any]:
        return {"source": self.source, "slaName": self.sla, "serviceClass": self.service_class,
                "ipDiffServCodePoint": self.dscp, "flowStartMilliseconds": self.flow_start_ms,
                "flowEndMilliseconds": self.flow_end_ms, "octetDeltaCount": self.octets,
                "packetDeltaCount": self.packets, "droppedPacketDeltaCount": self.dropped_packets}


@dataclass(frozen=True)
class ImportResult:
    added: int
    duplicates: int        # the same record again: counted once
    conflicts: list[str]   # same key, different counts: refused, named


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (sqlite_insert if dialect == "sqlite" else postgresql_insert)(UsageRecordRow.__table__)


def sla_ids(session: Session, names: Sequence[str]) -> dict[str, int]:
    query = select(SlaRow.name, SlaRow.id).where(SlaRow.name.in_(list(names)))
    return {name: id_ for name, id_ in session.execute(query)}


def hour_window(at: datetime) -> tuple[int, int]:
    start = int(at.timestamp() * 1000) // MS_PER_HOUR * MS_PER_HOUR
    return start, start + MS_PER_HOUR


def add_meter_usage(session: Session, deltas: Mapping[tuple[str, str], Counted], dscp: Mapping[str, int],
                    at: datetime) -> None:
    """Add one counter report's (SLA name, class) deltas to the hour's meter records."""
    names = sorted({sla for sla, _ in deltas})
    if not names:
        return
    ids = sla_ids(session, names)
    start, end = hour_window(at)
    rows = [{"source": METER, "sla_id": ids[sla], "service_class": service_class, "dscp": dscp.get(service_class, 0),
             "flow_start_ms": start, "flow_end_ms": end, "octets": d.octets, "packets": d.packets,
             "dropped_packets": d.drops, "recorded_at": at}
            for (sla, service_class), d in sorted(deltas.items()) if sla in ids and (d.octets or d.packets or d.drops)]
    if not rows:
        return
    statement = _insert(session)
    table = UsageRecordRow.__table__
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.source, table.c.sla_id, table.c.dscp, table.c.flow_start_ms, table.c.flow_end_ms],
        set_={"octets": table.c.octets + statement.excluded.octets,
              "packets": table.c.packets + statement.excluded.packets,
              "dropped_packets": table.c.dropped_packets + statement.excluded.dropped_packets,
              "recorded_at": statement.excluded.recorded_at})
    session.execute(statement, rows)


def parse_record(data: Mapping[str, Any], dscp: Mapping[str, int], where: str) -> UsageRecord:
    """One record from IPFIX-style JSON; an error names the record and the field."""
    classes = {value: name for name, value in dscp.items()}
    try:
        code = int(data["ipDiffServCodePoint"])
        start, end = int(data["flowStartMilliseconds"]), int(data["flowEndMilliseconds"])
        octets, packets = int(data["octetDeltaCount"]), int(data["packetDeltaCount"])
        dropped = int(data.get("droppedPacketDeltaCount", 0))
        sla, source = str(data["slaName"]), str(data.get("source", "import"))
    except KeyError as exc:
        raise InvalidValue(f"{where}: missing field {exc.args[0]}", field=str(exc.args[0])) from None
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{where}: {exc}", field="usage record") from None
    if code not in classes:
        raise InvalidValue(f"{where}: ipDiffServCodePoint {code} is not a GSB class's DSCP "
                           f"({', '.join(f'{v} {k}' for k, v in dscp.items())})", field="ipDiffServCodePoint",
                           bound=sorted(classes), value=code)
    if end <= start:
        raise InvalidValue(f"{where}: flowEndMilliseconds {end} is not after flowStartMilliseconds {start}",
                           field="flowEndMilliseconds", bound=start, value=end)
    if min(octets, packets, dropped) < 0:
        raise InvalidValue(f"{where}: counts must not be negative", field="octetDeltaCount", bound=0)
    if source == METER:
        raise InvalidValue(f"{where}: source {METER!r} is the controller's own meter", field="source", value=source)
    return UsageRecord(source, sla, classes[code], code, start, end, octets, packets, dropped)


def import_records(session: Session, records: Sequence[UsageRecord], at: datetime) -> ImportResult:
    """Store new records; a record already stored with the same counts is a duplicate (counted
    once); with other counts it is a conflict, and nothing of the batch is stored."""
    names = sorted({r.sla for r in records})
    ids = sla_ids(session, names)
    missing = [name for name in names if name not in ids]
    if missing:
        raise InvalidValue(f"usage records name unknown SLA(s): {', '.join(missing[:5])}", field="slaName",
                           value=missing[0])
    known = _existing(session, records, ids)   # stored, then also the batch's own earlier records
    fresh, duplicates, conflicts = [], 0, []
    for r in records:
        key = (r.source, ids[r.sla], r.dscp, r.flow_start_ms, r.flow_end_ms)
        counts = (r.octets, r.packets, r.dropped_packets)
        stored = known.get(key)
        if stored is None:
            known[key] = counts
            fresh.append({"source": r.source, "sla_id": ids[r.sla], "service_class": r.service_class, "dscp": r.dscp,
                          "flow_start_ms": r.flow_start_ms, "flow_end_ms": r.flow_end_ms, "octets": r.octets,
                          "packets": r.packets, "dropped_packets": r.dropped_packets, "recorded_at": at})
        elif stored == counts:
            duplicates += 1
        else:
            conflicts.append(f"{r.sla} DSCP {r.dscp} {iso_ms(r.flow_start_ms)}..{iso_ms(r.flow_end_ms)} from "
                             f"{r.source}: {counts} differs from the stored {stored}")
    if fresh and not conflicts:
        session.execute(_insert(session), fresh)
    return ImportResult(0 if conflicts else len(fresh), duplicates, conflicts)


def _existing(session: Session, records: Sequence[UsageRecord],
              ids: Mapping[str, int]) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    table = UsageRecordRow.__table__.c
    sla_ids = sorted({ids[r.sla] for r in records})
    low, high = min(r.flow_start_ms for r in records), max(r.flow_start_ms for r in records)
    rows = session.execute(select(table.source, table.sla_id, table.dscp, table.flow_start_ms, table.flow_end_ms,
                                  table.octets, table.packets, table.dropped_packets)
                           .where(table.sla_id.in_(sla_ids), table.flow_start_ms.between(low, high)))
    return {tuple(row[:5]): tuple(row[5:]) for row in rows}  # type: ignore[misc]


def iso_ms(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, UTC))
