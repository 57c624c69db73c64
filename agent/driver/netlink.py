"""A small rtnetlink client for the agent's HTB trees: the root qdisc, classes, leaf qdiscs, counters.

Hand-written on `socket` and `struct`: pyroute2 is too slow at 10k classes (a stats dump takes 1.6 s
against 0.07 s for `tc -s`), does not decode TCA_STATS_PKT64 (its packet counters wrap at 2^32) and
crashes deleting a class with a kind (design/PITFALLS.md). This module speaks only what the agent
needs. Wire formats are declared as tables; encoders and decoders are plain functions over bytes,
so the unit tests round-trip them without a kernel, and `Rtnl` only moves bytes to and from it.

Conventions shared with the kernel (verified against it in tests/lab/test_netlink_kernel.py):

* Rates. `HtbClass` carries bit/s; the kernel keeps bytes/s (u32 in tc_ratespec, plus
  TCA_HTB_RATE64/CEIL64 from 2^32 bytes/s up, as tc does). A rate is sent as `rate_bps // 8`, so a
  rate that is not a multiple of 8 bit/s reads back rounded down to one: compare rates in bytes/s.
* Link layer. Each tc_ratespec says TC_LINKLAYER_ETHERNET, as tc itself does; sch_htb then reads
  no rate tables (it looks at TCA_HTB_RTAB/CTAB only for TC_LINKLAYER_UNAWARE, to guess the link
  layer for old tc binaries), so none are sent: that is most of a class message saved.
* Burst. buffer/cbuffer are what tc computes with no `burst` option: rate/HZ + 1600 bytes (tc's
  default MTU), as psched ticks, with tc's own truncations; HZ and the tick length come from
  /proc/net/psched as tc reads them. `tc -d class show` shows the same burst for both.
* Prio and quantum. The kernel stores them only while a class is a leaf: it ignores them when an
  inner class is changed, and reports an inner class's values from when it was last a leaf.

One `Rtnl` is one socket, not thread-safe; it belongs to the namespace its creating thread was in.
"""

from __future__ import annotations

import errno
import operator
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import NamedTuple, Self

from agent.driver.netns import entered
from agent.plan import HTB_MAJOR, HtbClass

# --- linux/netlink.h ---------------------------------------------------------------------------
NLMSGHDR = struct.Struct("=IHHII")       # length, type, flags, seq, port id
NLATTR = struct.Struct("=HH")            # length, type
NLMSGERR = struct.Struct("=i")           # error (negative errno; 0 is an ack), then the request's header
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 0x1, 0x2, 0x4, 0x8
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200   # flags of an NLMSG_ERROR
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF                   # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
SO_RCVBUFFORCE = 33

# --- linux/rtnetlink.h, linux/if_link.h ----------------------------------------------------------
IFINFOMSG = struct.Struct("=BxHiII")     # family, type, index, flags, change
TCMSG = struct.Struct("=BxxxiIII")       # family, ifindex, handle, parent, info
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTCLASS, RTM_DELTCLASS, RTM_GETTCLASS = 40, 41, 42
IFLA_IFNAME, IFLA_EXT_MASK = 3, 29
RTEXT_FILTER_SKIP_STATS = 1 << 3         # a link reply without its counters: smaller

# --- linux/pkt_sched.h, linux/gen_stats.h ---------------------------------------------------------
TC_H_ROOT = 0xFFFFFFFF
TCA_KIND, TCA_OPTIONS, TCA_STATS2 = 1, 2, 7
TCA_HTB_PARMS, TCA_HTB_INIT, TCA_HTB_RATE64, TCA_HTB_CEIL64 = 1, 2, 6, 7
TCA_STATS_BASIC, TCA_STATS_QUEUE, TCA_STATS_PKT64 = 1, 3, 8
TC_HTB_GLOB = struct.Struct("=IIIII")    # version, rate2quantum, defcls, debug, direct_pkts
# tc_htb_opt: rate and ceil as tc_ratespec (cell_log, linklayer, overhead, cell_align, mpu, rate),
# then buffer, cbuffer, quantum, level (kernel to user only), prio
TC_HTB_OPT = struct.Struct("=BBHhHI BBHhHI IIIII")
GNET_STATS_BASIC = struct.Struct("=QI")  # bytes, packets (u32; the kernel pads the struct to 16)
GNET_STATS_QUEUE = struct.Struct("=IIIII")   # qlen, backlog, drops, requeues, overlimits
U32, U64 = struct.Struct("=I"), struct.Struct("=Q")
HTB_PROTOCOL_VERSION = 3                 # sch_htb refuses any other tc_htb_glob.version
HTB_RATE2QUANTUM = 10                    # tc's default r2q: quantum = rate / 10 when none is given
TC_LINKLAYER_ETHERNET = 1
TC_DEFAULT_MTU = 1600                    # tc's default `mtu`, the floor of its computed burst
U32_MAX = 0xFFFFFFFF

RECEIVE_BUFFER = 64 * 1024               # the kernel fills a dump message up to 32 KiB per read
SOCKET_BUFFER = 4 * 1024 * 1024


class ClassStats(NamedTuple):
    """One HTB class's counters, as `tc -s class show` prints them. (A NamedTuple, not a frozen
    dataclass: 10,000 of them per counters poll, and building a tuple costs a fifth.)"""

    bytes: int        # u64 from TCA_STATS_BASIC
    packets: int      # u64: TCA_STATS_PKT64 when present (only once past 2^32), else TCA_STATS_BASIC's u32
    drops: int        # TCA_STATS_QUEUE: for HTB, packets its leaf qdisc refused
    overlimits: int   # TCA_STATS_QUEUE


class NetlinkError(OSError):
    """The kernel refused a request: errno, what was asked (operation, device, class), and the
    kernel's own explanation (extended ack) when it gave one."""

    def __init__(self, code: int, operation: str, extack: str | None = None) -> None:
        detail = f"{os.strerror(code)}: {extack}" if extack else os.strerror(code)
        super().__init__(code, f"{operation}: {detail}")
        self.operation = operation
        self.extack = extack


@dataclass(frozen=True)
class Psched:
    """The kernel's packet scheduler clock as tc reads it from /proc/net/psched."""

    tick_in_usec: float   # psched ticks per microsecond (15.625: a tick is 64 ns)
    hz: int               # what tc calls HZ: timer resolution in ticks per second

    @classmethod
    def parse(cls, text: str) -> Psched:
        t2us, us2t, clock_res, hz = (int(field, 16) for field in text.split()[:4])
        if clock_res == 1_000_000_000:   # tc's compatibility rule for nanosecond clocks
            t2us = us2t
        return cls(tick_in_usec=t2us / us2t * (clock_res / 1_000_000), hz=hz if clock_res == 1_000_000 else 100)


@cache
def kernel_psched() -> Psched:
    try:
        with open("/proc/net/psched") as file:
            return Psched.parse(file.read())
    except OSError:
        return Psched.parse("000003e8 00000040 000f4240 3b9aca00")   # any high-resolution-timer kernel


def burst_ticks(rate_bytes: int, psched: Psched) -> int:
    """tc's default HTB buffer for `rate_bytes` bytes/s, in psched ticks (q_htb.c, tc_core.c).

    tc converts through whole microseconds (an unsigned int) before scaling to ticks; so do we, or
    `tc -d` would show a burst one byte off."""
    if rate_bytes <= 0:
        return 0   # the kernel refuses such a class anyway; see Rtnl.set_htb_class
    size = rate_bytes // psched.hz + TC_DEFAULT_MTU
    usec = int(1_000_000 * (size / rate_bytes))
    return min(int(usec * psched.tick_in_usec), U32_MAX)


def classid(minor: int, major: int = HTB_MAJOR) -> str:
    return f"{major:x}:{minor:x}"


# --- encoding --------------------------------------------------------------------------------------

def _align(length: int) -> int:
    return (length + 3) & ~3


def encode_attribute(kind: int, payload: bytes) -> bytes:
    length = NLATTR.size + len(payload)
    return NLATTR.pack(length, kind) + payload + bytes(_align(length) - length)


def encode_message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def encode_tcmsg(ifindex: int, handle: int, parent: int) -> bytes:
    return TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, 0)


def _handle(minor: int) -> int:
    return (HTB_MAJOR << 16) | minor


def _ratespec(rate_bytes: int) -> tuple[int, int, int, int, int, int]:
    return (0, TC_LINKLAYER_ETHERNET, 0, 0, 0, min(rate_bytes, U32_MAX))


def encode_htb_options(cls: HtbClass, psched: Psched) -> bytes:
    """TCA_OPTIONS of an HTB class: tc_htb_opt, and RATE64/CEIL64 when a rate needs 64 bits."""
    rate, ceil = cls.rate_bps // 8, cls.ceil_bps // 8
    opt = TC_HTB_OPT.pack(*_ratespec(rate), *_ratespec(ceil), burst_ticks(rate, psched), burst_ticks(ceil, psched),
                          cls.quantum, 0, cls.prio)
    options = encode_attribute(TCA_HTB_PARMS, opt)
    if rate > U32_MAX:
        options += encode_attribute(TCA_HTB_RATE64, U64.pack(rate))
    if ceil > U32_MAX:
        options += encode_attribute(TCA_HTB_CEIL64, U64.pack(ceil))
    return encode_attribute(TCA_OPTIONS, options)


def encode_htb_class(seq: int, ifindex: int, cls: HtbClass, *, create: bool, psched: Psched) -> bytes:
    """RTM_NEWTCLASS for 1:minor: add it (create) or change it in place. Parent 0 means the qdisc 1:."""
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if create else 0)
    body = (encode_tcmsg(ifindex, _handle(cls.minor), _handle(cls.parent))
            + encode_attribute(TCA_KIND, b"htb\0") + encode_htb_options(cls, psched))
    return encode_message(RTM_NEWTCLASS, flags, seq, body)


def encode_htb_root(seq: int, ifindex: int, default_minor: int) -> bytes:
    glob = TC_HTB_GLOB.pack(HTB_PROTOCOL_VERSION, HTB_RATE2QUANTUM, default_minor, 0, 0)
    body = (encode_tcmsg(ifindex, HTB_MAJOR << 16, TC_H_ROOT) + encode_attribute(TCA_KIND, b"htb\0")
            + encode_attribute(TCA_OPTIONS, encode_attribute(TCA_HTB_INIT, glob)))
    return encode_message(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)


# --- decoding --------------------------------------------------------------------------------------

def iter_messages(buf: bytes | bytearray, size: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, body start, end) of each message in the first `size` bytes of `buf`."""
    offset = 0
    while offset + NLMSGHDR.size <= size:
        length, kind, flags, seq, _ = NLMSGHDR.unpack_from(buf, offset)
        if length < NLMSGHDR.size or offset + length > size:
            raise NetlinkError(errno.EPROTO, "read a netlink reply", f"malformed message at byte {offset}")
        yield kind, flags, seq, offset + NLMSGHDR.size, offset + length
        offset += _align(length)


def attributes(buf: bytes | bytearray, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Attribute type -> (payload start, payload end), for the attributes in buf[start:end]."""
    found = {}
    while start + NLATTR.size <= end:
        length, kind = NLATTR.unpack_from(buf, start)
        if length < NLATTR.size:
            break
        found[kind & NLA_TYPE_MASK] = (start + NLATTR.size, start + length)
        start += _align(length)
    return found


def _string(buf: bytes | bytearray, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).split(b"\0", 1)[0].decode(errors="replace")


def decode_error(buf: bytes | bytearray, start: int, end: int, flags: int) -> tuple[int, str | None]:
    """(errno, extended ack text) of an NLMSG_ERROR or NLMSG_DONE body; errno 0 is an ack."""
    if end - start < NLMSGERR.size:
        return 0, None
    (code,) = NLMSGERR.unpack_from(buf, start)
    if not flags & NLM_F_ACK_TLVS:
        return -code, None
    tlvs = start + NLMSGERR.size
    if end - tlvs >= NLMSGHDR.size:   # NLMSG_ERROR echoes the request's header (or all of it)
        echoed = NLMSGHDR.unpack_from(buf, tlvs)[0]
        tlvs += NLMSGHDR.size if flags & NLM_F_CAPPED else _align(echoed)
    message = attributes(buf, tlvs, end).get(NLMSGERR_ATTR_MSG)
    return -code, _string(buf, message) if message else None


def decode_htb_root_default(buf: bytes | bytearray, start: int, end: int) -> int | None:
    """The default class minor in one RTM_NEWQDISC body, if it is HTB with handle 1:; else None."""
    handle = TCMSG.unpack_from(buf, start)[2]
    attrs = attributes(buf, start + TCMSG.size, end)
    if handle != HTB_MAJOR << 16 or TCA_KIND not in attrs or _string(buf, attrs[TCA_KIND]) != "htb":
        return None
    init = attributes(buf, *attrs[TCA_OPTIONS]).get(TCA_HTB_INIT) if TCA_OPTIONS in attrs else None
    return None if init is None else int(TC_HTB_GLOB.unpack_from(buf, init[0])[2])


def _minor_of_parent(parent: int) -> int:
    """The class's parent as a minor id; 0 for the qdisc 1: (the kernel says TC_H_ROOT)."""
    return 0 if parent == TC_H_ROOT else parent & 0xFFFF


def decode_htb_class(buf: bytes | bytearray, start: int, end: int) -> HtbClass | None:
    """The HTB class in one RTM_NEWTCLASS body (tcmsg and attributes); None for any other class.

    Walks the attributes in place up to TCA_OPTIONS (the counters after it are not read)."""
    _, _, handle, parent, _ = TCMSG.unpack_from(buf, start)
    if handle >> 16 != HTB_MAJOR:
        return None
    is_htb, options = False, None
    offset = start + TCMSG.size
    while offset < end and (options is None or not is_htb):
        length, kind = NLATTR.unpack_from(buf, offset)
        kind &= NLA_TYPE_MASK
        if kind == TCA_KIND:
            is_htb = buf[offset + NLATTR.size:offset + length].rstrip(b"\0") == b"htb"
        elif kind == TCA_OPTIONS:
            options = attributes(buf, offset + NLATTR.size, offset + length)
        offset += (length + 3) & ~3 or 4
    if not is_htb or options is None or TCA_HTB_PARMS not in options:
        return None
    opt = TC_HTB_OPT.unpack_from(buf, options[TCA_HTB_PARMS][0])
    rate, ceil, quantum, prio = opt[5], opt[11], opt[14], opt[16]
    if TCA_HTB_RATE64 in options:
        rate = U64.unpack_from(buf, options[TCA_HTB_RATE64][0])[0]
    if TCA_HTB_CEIL64 in options:
        ceil = U64.unpack_from(buf, options[TCA_HTB_CEIL64][0])[0]
    return HtbClass(handle & 0xFFFF, _minor_of_parent(parent), rate * 8, ceil * 8, prio, quantum)


class StatsLayout:
    """Where the counters sit in RTM_NEWTCLASS bodies of one length, learned from one of them.

    A dump's HTB classes all carry the same attributes in the same order, so after the first
    message of a length, one precompiled unpack reads the counters of the next. The attribute
    headers the layout relies on are part of that unpack and are checked on every message: if one
    differs, `read` returns None and the caller walks the attributes instead."""

    _PAYLOAD = {"stats2": "", "basic": "QI", "queue": "IIIII", "pkt64": "Q"}

    def __init__(self, headers: dict[str, tuple[int, int, int]]) -> None:
        # headers: name -> (offset from the body start, attribute length, raw attribute type)
        layout, position, count = "=", 0, 0
        where: dict[str, int] = {}   # name -> index of its header's length in the unpacked tuple
        for name, (offset, _, _) in sorted(headers.items(), key=lambda item: item[1][0]):
            layout += f"{offset - position}x" if offset > position else ""
            where[name] = count
            layout += "HH" + self._PAYLOAD[name]
            position = offset + struct.calcsize("=HH" + self._PAYLOAD[name])
            count += 2 + len(self._PAYLOAD[name])
        self.struct = struct.Struct(layout)
        self._headers = operator.itemgetter(*(where[n] + i for n in sorted(where) for i in (0, 1)))
        self._expected = tuple(v for n in sorted(where) for v in headers[n][1:])
        basic, queue = where["basic"], where["queue"]
        self.pkt64 = "pkt64" in where
        picks = [basic + 2, basic + 3, queue + 4, queue + 6] + ([where["pkt64"] + 2] if self.pkt64 else [])
        self._values = operator.itemgetter(*picks)

    def read(self, buf: bytes | bytearray, start: int) -> ClassStats | None:
        values = self.struct.unpack_from(buf, start)
        if self._headers(values) != self._expected:
            return None
        if self.pkt64:   # PKT64 is the full count once past 2^32; BASIC's u32 until then
            nbytes, packets, drops, overlimits, packets64 = self._values(values)
            return ClassStats(nbytes, max(packets, packets64), drops, overlimits)
        return ClassStats(*self._values(values))

    @classmethod
    def learn(cls, buf: bytes | bytearray, start: int, end: int) -> StatsLayout | None:
        """The layout of this body; None when it has no TCA_STATS2 holding basic and queue stats
        at least as long as the structs read from them."""
        found = _find_attribute(buf, start, end, TCA_STATS2)
        if found is None:
            return None
        at, length, kind = found
        headers = {"stats2": (at - start, length, kind)}
        names = {TCA_STATS_BASIC: "basic", TCA_STATS_QUEUE: "queue", TCA_STATS_PKT64: "pkt64"}
        inner, inner_end = at + NLATTR.size, min(at + length, end)
        while inner + NLATTR.size <= inner_end:
            a_length, a_kind = NLATTR.unpack_from(buf, inner)
            name = names.get(a_kind)
            if name and a_length >= NLATTR.size + struct.calcsize("=" + cls._PAYLOAD[name]):
                headers[name] = (inner - start, a_length, a_kind)
            inner += (a_length + 3) & ~3 or 4
        if "basic" not in headers or "queue" not in headers:
            return None
        layout = cls(headers)
        return layout if start + layout.struct.size <= end else None


def _find_attribute(buf: bytes | bytearray, start: int, end: int, wanted: int) -> tuple[int, int, int] | None:
    """(offset, length, raw type) of the first attribute of type `wanted` in buf[start:end]."""
    while start + NLATTR.size <= end:
        length, kind = NLATTR.unpack_from(buf, start)
        if kind & NLA_TYPE_MASK == wanted:
            return start, length, kind
        start += (length + 3) & ~3 or 4      # `or 4`: a zero length must not loop forever
    return None


def decode_class_stats(buf: bytes | bytearray, start: int, end: int) -> ClassStats:
    """Counters from the attributes (after the tcmsg) of one RTM_NEWTCLASS message, by walking
    them (`StatsLayout` is the fast path for a dump's later messages)."""
    unpack_attr = NLATTR.unpack_from
    found = _find_attribute(buf, start, end, TCA_STATS2)
    if found is None:
        return ClassStats(0, 0, 0, 0)
    at, length, _ = found
    start, end = at + NLATTR.size, at + length
    nbytes = packets = drops = overlimits = 0
    while start < end:
        length, kind = unpack_attr(buf, start)
        if kind == TCA_STATS_BASIC:
            nbytes, basic_packets = GNET_STATS_BASIC.unpack_from(buf, start + 4)
            packets = max(packets, basic_packets)      # PKT64 may come first or after
        elif kind == TCA_STATS_QUEUE:
            _, _, drops, _, overlimits = GNET_STATS_QUEUE.unpack_from(buf, start + 4)
        elif kind == TCA_STATS_PKT64:
            packets = U64.unpack_from(buf, start + 4)[0]
        start += (length + 3) & ~3 or 4
    return ClassStats(nbytes, packets, drops, overlimits)


# --- the socket ------------------------------------------------------------------------------------

class Rtnl:
    """One NETLINK_ROUTE socket, in namespace `netns` (an `ip netns` name; None: this thread's).

    Every change is acked (NLM_F_ACK) and a refusal raises NetlinkError naming what was asked."""

    def __init__(self, netns: str | None = None) -> None:
        with entered(netns):   # the socket stays in the namespace it was created in
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)   # the kernel's reason, as text
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)   # acks without a copy of our request
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self._attach(sock)

    def _attach(self, sock: socket.socket) -> None:
        """Use `sock` as the kernel's end (the unit tests attach a datagram socketpair instead)."""
        self._sock = sock
        self._buf = bytearray(RECEIVE_BUFFER)
        self._seq = 0
        self._names: dict[int, str] = {}   # ifindex -> device name, for error messages
        self._psched = kernel_psched()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # --- public operations ---

    def ifindex(self, device: str) -> int:
        body = (IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + encode_attribute(IFLA_IFNAME, device.encode() + b"\0")
                + encode_attribute(IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS)))
        seq = self._next_seq()
        for kind, reply in self._transact(encode_message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body),
                                          seq, f"look up device {device}"):
            if kind == RTM_NEWLINK:
                index = int(IFINFOMSG.unpack_from(reply)[2])
                self._names[index] = device
                return index
        raise NetlinkError(errno.ENODEV, f"look up device {device}", "no link in the kernel's reply")

    def root_qdisc(self, ifindex: int) -> tuple[str, int] | None:
        """(kind, major) of the device's root qdisc; None while the kernel's default is there.

        The defaults the kernel attaches itself (noqueue, pfifo_fast, mq) have handle 0, and the
        builtin noop of a device never up is not reported at all; a qdisc with a handle was
        configured by someone."""
        reply = self._root_qdisc_reply(ifindex)
        if reply is None:
            return None
        handle = TCMSG.unpack_from(reply)[2]
        return _string(reply, attributes(reply, TCMSG.size, len(reply))[TCA_KIND]), handle >> 16

    def htb_root(self, ifindex: int) -> int | None:
        """The default class (minor) of the root qdisc if that is HTB 1:, else None. (Beyond the
        original API: agent/kernel.py asks for it; it is the same request as `root_qdisc`.)"""
        reply = self._root_qdisc_reply(ifindex)
        return None if reply is None else decode_htb_root_default(reply, 0, len(reply))

    def _root_qdisc_reply(self, ifindex: int) -> bytes | None:
        """The RTM_NEWQDISC body of the root qdisc, None for a default one (handle 0 or none)."""
        seq = self._next_seq()
        # a qdisc GET answers only with NLM_F_ECHO (without it the kernel just acks)
        request = encode_message(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, seq,
                                 encode_tcmsg(ifindex, 0, TC_H_ROOT))
        for kind, reply in self._transact(request, seq, f"read the root qdisc of {self._device(ifindex)}"):
            _, _, handle, parent, _ = TCMSG.unpack_from(reply)
            if kind == RTM_NEWQDISC and parent == TC_H_ROOT:
                return reply if handle else None
        return None

    def add_htb_root(self, ifindex: int, default_minor: int) -> None:
        """Root qdisc `htb` with handle 1:, tc's default r2q, unclassified traffic to 1:default_minor."""
        seq = self._next_seq()
        self._transact(encode_htb_root(seq, ifindex, default_minor), seq,
                       f"add HTB root qdisc {HTB_MAJOR:x}: (default {default_minor:x}) on {self._device(ifindex)}")

    def delete_root_qdisc(self, ifindex: int) -> None:
        """Back to the kernel's default qdisc. ENOENT if the root already is the default."""
        seq = self._next_seq()
        request = encode_message(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK, seq, encode_tcmsg(ifindex, 0, TC_H_ROOT))
        self._transact(request, seq, f"delete the root qdisc of {self._device(ifindex)}")

    def htb_classes(self, ifindex: int) -> dict[int, HtbClass]:
        """The classes of qdisc 1: by minor id; {} if there is no HTB 1: (or no such ifindex)."""
        found = {}
        for buf, start, end in self._dump_classes(ifindex, "read HTB classes"):
            cls = decode_htb_class(buf, start, end)
            if cls is not None:
                found[cls.minor] = cls
        return found

    def class_stats(self, ifindex: int) -> dict[int, ClassStats]:
        """Counters of the classes of qdisc 1: by minor id, from one dump."""
        found = {}
        unpack_tcmsg = TCMSG.unpack_from
        layouts: dict[int, StatsLayout | None] = {}   # by body length
        for buf, start, end in self._dump_classes(ifindex, "read class counters"):
            handle = unpack_tcmsg(buf, start)[2]
            if handle >> 16 != HTB_MAJOR:
                continue
            body, size = start + TCMSG.size, end - start
            if size not in layouts:
                layouts[size] = StatsLayout.learn(buf, body, end)
            layout = layouts[size]
            stats = layout.read(buf, body) if layout is not None else None
            found[handle & 0xFFFF] = stats if stats is not None else decode_class_stats(buf, body, end)
        return found

    def set_htb_class(self, ifindex: int, cls: HtbClass, *, create: bool) -> None:
        """Add class 1:minor (create: it must not exist) or change an existing one in place.

        HTB cannot move a class: on change, the parent is sent but the kernel keeps the old one.
        Rates below 8 bit/s (0 bytes/s) are refused here, with the values, before the kernel's bare
        EINVAL. quantum 0 lets the kernel compute rate/r2q (within 1000..200000), as tc does."""
        operation = (f"{'add' if create else 'change'} HTB class {classid(cls.minor)} (parent {classid(cls.parent)}) "
                     f"on {self._device(ifindex)}")
        if min(cls.rate_bps, cls.ceil_bps) < 8:
            raise NetlinkError(errno.EINVAL, operation, f"rate and ceil must be at least 8 bit/s, got rate_bps="
                                                        f"{cls.rate_bps} and ceil_bps={cls.ceil_bps}")
        seq = self._next_seq()
        self._transact(encode_htb_class(seq, ifindex, cls, create=create, psched=self._psched), seq, operation)

    def delete_class(self, ifindex: int, minor: int) -> None:
        """Delete class 1:minor (no kind, no options: the kernel needs none)."""
        seq = self._next_seq()
        request = encode_message(RTM_DELTCLASS, NLM_F_REQUEST | NLM_F_ACK, seq,
                                 encode_tcmsg(ifindex, _handle(minor), 0))
        self._transact(request, seq, f"delete class {classid(minor)} on {self._device(ifindex)}")

    def add_leaf_qdisc(self, ifindex: int, minor: int, kind: str) -> None:
        """A qdisc `kind` with its default options under class 1:minor; the kernel picks its handle."""
        seq = self._next_seq()
        body = encode_tcmsg(ifindex, 0, _handle(minor)) + encode_attribute(TCA_KIND, kind.encode() + b"\0")
        request = encode_message(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body)
        self._transact(request, seq, f"add {kind} qdisc under class {classid(minor)} on {self._device(ifindex)}")

    # --- plumbing ---

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & U32_MAX
        return self._seq

    def _device(self, ifindex: int) -> str:
        name = self._names.get(ifindex)
        return f"{name} (ifindex {ifindex})" if name else f"ifindex {ifindex}"

    def _transact(self, request: bytes, seq: int, operation: str) -> list[tuple[int, bytes]]:
        """Send one acked request; return the replies (type, body) that came before the ack."""
        self._sock.send(request)
        replies = []
        while True:
            size = self._sock.recv_into(self._buf)
            for kind, flags, mseq, start, end in iter_messages(self._buf, size):
                if mseq != seq:   # left over from an earlier request: not ours to read
                    continue
                if kind == NLMSG_ERROR or kind == NLMSG_DONE:
                    code, extack = decode_error(self._buf, start, end, flags)
                    if code:
                        raise NetlinkError(code, operation, extack)
                    return replies
                replies.append((kind, bytes(self._buf[start:end])))

    def _dump_classes(self, ifindex: int, what: str) -> Iterator[tuple[bytearray, int, int]]:
        # tcm_parent 1: makes the kernel walk the classes of qdisc 1: only, not of leaf qdiscs
        seq = self._next_seq()
        request = encode_message(RTM_GETTCLASS, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, seq,
                                 encode_tcmsg(ifindex, 0, HTB_MAJOR << 16))
        return self._dump(request, seq, f"{what} of {self._device(ifindex)}")

    def _dump(self, request: bytes, seq: int, operation: str) -> Iterator[tuple[bytearray, int, int]]:
        """(buffer, body start, end) per message of a dump, until NLMSG_DONE.

        The buffer is reused by the next read: use each message before asking for the next. A dump
        ends with NLMSG_DONE: the request says NLM_F_ACK like every other, but the kernel sends no
        ack after a dump. One cut short is read to its end, or the next dump would get EBUSY."""
        self._sock.send(request)
        buf, recv_into, unpack = self._buf, self._sock.recv_into, NLMSGHDR.unpack_from
        done = False
        try:
            while not done:
                size = recv_into(buf)
                offset = 0
                while offset < size:
                    length, kind, flags, mseq, _ = unpack(buf, offset)
                    if length < NLMSGHDR.size or offset + length > size:
                        done = True   # nothing more to trust on this socket's stream
                        raise NetlinkError(errno.EPROTO, operation, f"malformed message at byte {offset}")
                    if mseq == seq:
                        if kind == NLMSG_DONE or kind == NLMSG_ERROR:
                            done = True
                            code, extack = decode_error(buf, offset + NLMSGHDR.size, offset + length, flags)
                            if code:
                                raise NetlinkError(code, operation, extack)
                            break
                        yield buf, offset + NLMSGHDR.size, offset + length
                    offset += (length + 3) & ~3
        except GeneratorExit:   # the reader stopped early
            if not done:
                self._drain(seq)
            raise

    def _drain(self, seq: int) -> None:
        """Read the rest of dump `seq`; give up after a second of silence rather than hang."""
        self._sock.settimeout(1.0)
        try:
            while True:
                size = self._sock.recv_into(self._buf)
                for kind, _, mseq, _, _ in iter_messages(self._buf, size):
                    if mseq == seq and kind in (NLMSG_DONE, NLMSG_ERROR):
                        return
        except TimeoutError:
            pass
        finally:
            self._sock.settimeout(None)
