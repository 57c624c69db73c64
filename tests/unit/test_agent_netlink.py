"""The agent's rtnetlink client without a kernel: messages it builds decode back to what was asked,
a dump captured from a real kernel decodes to the counters `tc -s` printed for it, and the socket
loop (multi-part dumps, NLMSG_DONE, acks, refusals) runs against a fake kernel on a socketpair."""

from __future__ import annotations

import errno
import socket
import struct
import sys
from collections.abc import Iterator

import pytest

from agent.driver.netlink import (
    IFINFOMSG,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGHDR,
    RTM_DELTCLASS,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    RTM_NEWTCLASS,
    TC_H_ROOT,
    TC_HTB_GLOB,
    TC_HTB_OPT,
    TCA_HTB_CEIL64,
    TCA_HTB_INIT,
    TCA_HTB_PARMS,
    TCA_HTB_RATE64,
    TCA_KIND,
    TCA_OPTIONS,
    TCA_STATS2,
    TCA_STATS_BASIC,
    TCA_STATS_PKT64,
    TCA_STATS_QUEUE,
    TCMSG,
    U32_MAX,
    ClassStats,
    NetlinkError,
    Psched,
    Rtnl,
    StatsLayout,
    attributes,
    burst_ticks,
    decode_class_stats,
    decode_error,
    decode_htb_class,
    decode_htb_root_default,
    encode_attribute,
    encode_htb_class,
    encode_htb_root,
    encode_message,
    encode_tcmsg,
    iter_messages,
)
from agent.plan import HtbClass

pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="the captured kernel bytes are little-endian")

# /proc/net/psched of any kernel with high-resolution timers (64 ns ticks, tc's HZ = 1e9)
PSCHED = Psched.parse("000003e8 00000040 000f4240 3b9aca00")

# A class dump (RTM_GETTCLASS, parent 1:) read from Linux 6.18, x86_64, in two reads: four
# RTM_NEWTCLASS, then NLMSG_DONE. The tree: 1:1 root 100 Mbit; 1:10 (80/100 Mbit, prio 1),
# 1:20 (64 kbit, prio 2, a pfifo of 4 packets), 1:30 (1 Mbit, prio 3). 30 UDP frames of 242 bytes
# went to 1:10, 20 to 1:20. `tc -s class show` printed for them:
#   1:1  Sent 9922 bytes 41 pkt (dropped 0, overlimits 9 requeues 0)
#   1:10 Sent 7260 bytes 30 pkt (dropped 0, overlimits 8 requeues 0)
#   1:20 Sent 2662 bytes 11 pkt (dropped 9, overlimits 5 requeues 0)
#   1:30 Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)
CAPTURED_SEQ = 9
CAPTURED_DUMP = [bytes.fromhex("".join(part)) for part in (
    ("ec0000002800020009000000ed5d0000000000000300000001000100ffffffff00000000080001006874620034000200"
     "30000100000100000000000020bcbe00000100000000000020bcbe00d0070000d007000060ea00000700000000000000"
     "4800070014000100c2260000000000002900000000000000180003000000000000000000000000000000000009000000"
     "18000400040000000000000000000000a1060000a10600002c000300c226000000000000290000000000000009000000"
     "000000000000000000000000000000000000000018000400040000000000000000000000a1060000a1060000ec000000"
     "2800020009000000ed5d0000000000000300000010000100010001000000000008000100687462003400020030000100"
     "000100000000000080969800000100000000000020bcbe00c4090000d0070000ea050000000000000100000048000700"
     "140001005c1c0000000000001e0000000000000018000300000000000000000000000000000000000800000018000400"
     "1a000000040000000000000006ffffffbbffffff2c0003005c1c0000000000001e000000000000000800000000000000"
     "00000000000000000000000000000000180004001a000000040000000000000006ffffffbbffffffec00000028000200"
     "09000000ed5d0000000000000300000020000100010001000000d0800800010068746200340002003000010000010000"
     "00000000401f00000001000000000000401f000008af2f0008af2f00ea05000000000000020000004800070014000100"
     "660a0000000000000b00000000000000180003000000000000000000090000000000000005000000180004000b000000"
     "000000000000000032cbf8ff32cbf8ff2c000300660a0000000000000b00000009000000050000000000000000000000"
     "000000000000000000000000180004000b000000000000000000000032cbf8ff32cbf8ffec0000002800020009000000"
     "ed5d00000000000003000000300001000100010000000000080001006874620034000200300001000001000000000000"
     "48e80100000100000000000048e80100400d0300400d0300ea0500000000000003000000480007001400010000000000"
     "000000000000000000000000180003000000000000000000000000000000000000000000180004000000000000000000"
     "00000000400d0300400d03002c0003000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000018000400000000000000000000000000400d0300400d0300"),
    ("140000000300020009000000ed5d000000000000",),
)]
CAPTURED_STATS = {0x1: ClassStats(9922, 41, 0, 9), 0x10: ClassStats(7260, 30, 0, 8),
                  0x20: ClassStats(2662, 11, 9, 5), 0x30: ClassStats(0, 0, 0, 0)}
CAPTURED_CLASSES = {
    0x1: HtbClass(minor=0x1, parent=0, rate_bps=100_000_000, ceil_bps=100_000_000, prio=0, quantum=60000),
    0x10: HtbClass(minor=0x10, parent=0x1, rate_bps=80_000_000, ceil_bps=100_000_000, prio=1, quantum=1514),
    0x20: HtbClass(minor=0x20, parent=0x1, rate_bps=64_000, ceil_bps=64_000, prio=2, quantum=1514),
    0x30: HtbClass(minor=0x30, parent=0x1, rate_bps=1_000_000, ceil_bps=1_000_000, prio=3, quantum=1514),
}


def _only_message(data: bytes) -> tuple[int, int, int, int]:
    """(type, flags, body start, end) of the single message in `data`."""
    (message,) = list(iter_messages(data, len(data)))
    kind, flags, _, start, end = message
    return kind, flags, start, end


def _htb_options(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    top = attributes(data, start + TCMSG.size, end)
    return attributes(data, *top[TCA_OPTIONS])


def _with_seq(datagram: bytes, seq: int) -> bytes:
    """`datagram` with every message's sequence number replaced."""
    out = bytearray(datagram)
    for _, _, _, start, _ in iter_messages(datagram, len(datagram)):
        struct.pack_into("=I", out, start - NLMSGHDR.size + 8, seq)
    return bytes(out)


def _ack(seq: int, code: int = 0, extack: str | None = None) -> bytes:
    """An NLMSG_ERROR as a kernel with NETLINK_CAP_ACK and NETLINK_EXT_ACK sends it."""
    body = NLMSGERR.pack(-code) + NLMSGHDR.pack(NLMSGHDR.size + TCMSG.size, RTM_NEWTCLASS, 0, seq, 0)
    flags = NLM_F_CAPPED
    if extack:
        body += encode_attribute(1, extack.encode() + b"\0")
        flags |= NLM_F_ACK_TLVS
    return encode_message(NLMSG_ERROR, flags, seq, body)


# --- messages built and decoded back ---------------------------------------------------------------

@pytest.mark.parametrize("create, flags", [(True, NLM_F_CREATE | NLM_F_EXCL), (False, 0)])
def test_class_message_decodes_back_to_the_class_it_was_built_from(create: bool, flags: int) -> None:
    cls = HtbClass(minor=0x2A, parent=0x3, rate_bps=2_000_000, ceil_bps=20_000_000, prio=4, quantum=2500)
    data = encode_htb_class(7, 5, cls, create=create, psched=PSCHED)
    kind, got_flags, start, end = _only_message(data)
    assert (kind, got_flags) == (RTM_NEWTCLASS, NLM_F_REQUEST | NLM_F_ACK | flags)
    assert TCMSG.unpack_from(data, start) == (0, 5, 0x1002A, 0x10003, 0)
    assert decode_htb_class(data, start, end) == cls


def test_class_under_the_root_qdisc_is_sent_with_parent_1_and_reads_back_as_parent_0() -> None:
    cls = HtbClass(minor=0x1, parent=0, rate_bps=8_000_000, ceil_bps=8_000_000, prio=0, quantum=60000)
    data = encode_htb_class(1, 2, cls, create=True, psched=PSCHED)
    _, _, start, end = _only_message(data)
    assert TCMSG.unpack_from(data, start)[3] == 0x10000          # tc's `parent 1:`
    assert decode_htb_class(data, start, end) == cls
    kernel_form = bytearray(data)                                 # the kernel reports TC_H_ROOT
    struct.pack_into("=I", kernel_form, start + 12, TC_H_ROOT)
    assert decode_htb_class(kernel_form, start, end) == cls


def test_rates_of_2_to_the_32_bytes_per_second_and_more_travel_as_rate64_and_ceil64() -> None:
    cls = HtbClass(minor=0x5, parent=0x1, rate_bps=40_000_000_000, ceil_bps=100_000_000_000, prio=1, quantum=60000)
    data = encode_htb_class(1, 2, cls, create=True, psched=PSCHED)
    _, _, start, end = _only_message(data)
    options = _htb_options(data, start, end)
    opt = TC_HTB_OPT.unpack_from(data, options[TCA_HTB_PARMS][0])
    assert (opt[5], opt[11]) == (U32_MAX, U32_MAX)                # the u32 fields say "see the 64-bit one"
    assert TCA_HTB_RATE64 in options and TCA_HTB_CEIL64 in options
    assert decode_htb_class(data, start, end) == cls


def test_rates_below_2_to_the_32_bytes_per_second_carry_no_64_bit_attributes() -> None:
    top = (U32_MAX) * 8                                            # exactly the largest u32 byte rate
    cls = HtbClass(minor=0x5, parent=0x1, rate_bps=top, ceil_bps=top, prio=1, quantum=60000)
    data = encode_htb_class(1, 2, cls, create=True, psched=PSCHED)
    _, _, start, end = _only_message(data)
    assert set(_htb_options(data, start, end)) == {TCA_HTB_PARMS}
    assert decode_htb_class(data, start, end) == cls


def test_a_rate_that_is_not_a_multiple_of_8_reads_back_rounded_down_to_whole_bytes() -> None:
    cls = HtbClass(minor=0x5, parent=0x1, rate_bps=1_000_007, ceil_bps=3_333_337, prio=1, quantum=1514)
    data = encode_htb_class(1, 2, cls, create=True, psched=PSCHED)
    _, _, start, end = _only_message(data)
    back = decode_htb_class(data, start, end)
    assert back is not None
    assert (back.rate_bps, back.ceil_bps) == (1_000_000, 3_333_336)


def test_ratespecs_say_ethernet_so_no_rate_tables_are_sent() -> None:
    cls = HtbClass(minor=0x5, parent=0x1, rate_bps=1_000_000, ceil_bps=2_000_000, prio=1, quantum=1514)
    data = encode_htb_class(1, 2, cls, create=True, psched=PSCHED)
    _, _, start, end = _only_message(data)
    options = _htb_options(data, start, end)
    opt = TC_HTB_OPT.unpack_from(data, options[TCA_HTB_PARMS][0])
    assert (opt[1], opt[7]) == (1, 1)                              # TC_LINKLAYER_ETHERNET, rate and ceil
    assert set(options) == {TCA_HTB_PARMS}                         # no TCA_HTB_RTAB / TCA_HTB_CTAB
    assert len(data) < 120                                         # tc's message has 2 KiB of tables


@pytest.mark.parametrize("rate_bytes, ticks", [
    (125_000, 200_000),      # 1 Mbit: tc shows burst 1600b
    (416_667, 59_984),       # 3333337 bit: tc shows cburst 1599b (whole microseconds first)
    (1_000, 25_000_000),     # 8 kbit
    (5_000_000_000, 0),      # 40 Gbit: 1605 bytes take under a microsecond; tc sends 0 as well
])
def test_burst_is_what_tc_computes_by_default(rate_bytes: int, ticks: int) -> None:
    assert burst_ticks(rate_bytes, PSCHED) == ticks


def test_psched_of_a_high_resolution_kernel_has_64_ns_ticks_and_hz_of_1e9() -> None:
    assert PSCHED == Psched(tick_in_usec=15.625, hz=1_000_000_000)


def test_htb_root_message_carries_protocol_version_3_r2q_10_and_the_default_class() -> None:
    data = encode_htb_root(3, 4, 0x2F)
    kind, flags, start, end = _only_message(data)
    assert (kind, flags) == (RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    assert TCMSG.unpack_from(data, start) == (0, 4, 0x10000, TC_H_ROOT, 0)
    top = attributes(data, start + TCMSG.size, end)
    assert bytes(data[slice(*top[TCA_KIND])]) == b"htb\0"
    init = attributes(data, *top[TCA_OPTIONS])[TCA_HTB_INIT]
    assert TC_HTB_GLOB.unpack_from(data, init[0]) == (3, 10, 0x2F, 0, 0)


@pytest.mark.parametrize("handle, kind, expected", [(0x10000, b"htb\0", 0x2F), (0x20000, b"htb\0", None),
                                                     (0x10000, b"tbf\0", None)])
def test_the_default_class_is_read_only_from_an_htb_root_with_handle_1(
        handle: int, kind: bytes, expected: int | None) -> None:
    root = encode_htb_root(1, 4, 0x2F)                             # the kernel's reply has the same layout
    _, _, start, end = _only_message(root)
    reply = bytearray(root[start:end].replace(b"htb\0", kind))
    struct.pack_into("=I", reply, 8, handle)
    assert decode_htb_root_default(reply, 0, len(reply)) == expected


# --- what the kernel sends ---------------------------------------------------------------------------

def _captured_messages() -> Iterator[tuple[bytes, int, int, int]]:
    for chunk in CAPTURED_DUMP:
        for kind, _, _, start, end in iter_messages(chunk, len(chunk)):
            yield chunk, kind, start, end


def test_captured_dump_decodes_to_the_counters_tc_printed() -> None:
    found = {}
    for chunk, kind, start, end in _captured_messages():
        if kind == RTM_NEWTCLASS:
            found[TCMSG.unpack_from(chunk, start)[2] & 0xFFFF] = decode_class_stats(chunk, start + TCMSG.size, end)
    assert found == CAPTURED_STATS


def _bodies() -> list[tuple[bytes, int, int]]:
    """(buffer, body start after the tcmsg, end) of each captured class message."""
    return [(chunk, start + TCMSG.size, end)
            for chunk, kind, start, end in _captured_messages() if kind == RTM_NEWTCLASS]


def test_a_layout_learned_from_one_message_reads_every_message_of_its_length_as_the_walk_does() -> None:
    bodies = _bodies()
    for chunk, start, end in bodies:
        layout = StatsLayout.learn(chunk, start, end)
        assert layout is not None
        for other, o_start, o_end in bodies:
            if o_end - o_start == end - start:
                assert layout.read(other, o_start) == decode_class_stats(other, o_start, o_end)


def test_a_message_laid_out_differently_is_not_read_by_the_layout_and_falls_back_to_the_walk() -> None:
    chunk, start, end = _bodies()[1]
    layout = StatsLayout.learn(chunk, start, end)
    assert layout is not None
    # the same attributes with a 4-byte attribute of another kind in front: every offset shifts
    shifted = bytearray(chunk[:start]) + struct.pack("=HH", 4, 99) + bytearray(chunk[start:end])
    assert layout.read(shifted, start) is None
    assert decode_class_stats(shifted, start, end + 4) == decode_class_stats(chunk, start, end)


def test_with_pkt64_the_layout_reports_the_64_bit_packet_count() -> None:
    chunk, start, end = _bodies()[1]
    found = attributes(chunk, start, end)
    stats2_at = found[TCA_STATS2][0] - 4
    # append TCA_STATS_PKT64 = 2^32 + 5 inside TCA_STATS2 (the kernel adds it once past 2^32)
    pkt64 = struct.pack("=HHQ", 12, 8, 2**32 + 5)
    body = bytearray(chunk[start:end])
    length = struct.unpack_from("=H", body, stats2_at - start)[0]
    insert = stats2_at - start + ((length + 3) & ~3)
    body[insert:insert] = pkt64
    struct.pack_into("=H", body, stats2_at - start, length + 12)
    layout = StatsLayout.learn(bytes(body), 0, len(body))
    assert layout is not None and layout.pkt64
    stats = layout.read(bytes(body), 0)
    assert stats is not None and stats.packets == 2**32 + 5
    assert stats == decode_class_stats(bytes(body), 0, len(body))


def test_captured_dump_decodes_to_the_classes_that_were_built() -> None:
    found = {}
    for chunk, kind, start, end in _captured_messages():
        if kind == RTM_NEWTCLASS:
            cls = decode_htb_class(chunk, start, end)
            assert cls is not None
            found[cls.minor] = cls
    assert found == CAPTURED_CLASSES


def _stats_attributes(*inner: bytes) -> bytes:
    return encode_attribute(TCA_KIND, b"htb\0") + encode_attribute(TCA_STATS2, b"".join(inner))


@pytest.mark.parametrize("pkt64_first", [True, False])
def test_pkt64_replaces_the_32_bit_packet_count_once_it_wrapped(pkt64_first: bool) -> None:
    packets = 2**32 + 5
    basic = encode_attribute(TCA_STATS_BASIC, struct.pack("=QI4x", 10**12, packets & U32_MAX))
    pkt64 = encode_attribute(TCA_STATS_PKT64, struct.pack("=Q", packets))
    queue = encode_attribute(TCA_STATS_QUEUE, struct.pack("=5I", 0, 0, 7, 0, 11))
    parts = (pkt64, basic, queue) if pkt64_first else (basic, pkt64, queue)
    data = _stats_attributes(*parts)
    assert decode_class_stats(data, 0, len(data)) == ClassStats(10**12, packets, 7, 11)


def test_error_ack_gives_errno_and_the_kernels_text() -> None:
    data = _ack(4, errno.EBUSY, "HTB class in use")
    kind, flags, start, end = _only_message(data)
    assert kind == NLMSG_ERROR
    assert decode_error(data, start, end, flags) == (errno.EBUSY, "HTB class in use")


def test_error_ack_that_echoes_the_whole_request_still_finds_the_text() -> None:
    request = encode_message(RTM_DELTCLASS, NLM_F_REQUEST | NLM_F_ACK, 4, encode_tcmsg(3, 0x10005, 0) + b"\0" * 3)
    body = NLMSGERR.pack(-errno.ENOENT) + request + b"\0" + encode_attribute(1, b"Specified class not found\0")
    data = encode_message(NLMSG_ERROR, NLM_F_ACK_TLVS, 4, body)
    _, flags, start, end = _only_message(data)
    assert decode_error(data, start, end, flags) == (errno.ENOENT, "Specified class not found")


def test_plain_ack_is_errno_0() -> None:
    data = _ack(4)
    _, flags, start, end = _only_message(data)
    assert decode_error(data, start, end, flags) == (0, None)


def test_a_message_longer_than_what_was_read_is_refused() -> None:
    data = CAPTURED_DUMP[0][:100]
    with pytest.raises(NetlinkError) as caught:
        list(iter_messages(data, len(data)))
    assert caught.value.errno == errno.EPROTO


# --- the socket loop, against a fake kernel ----------------------------------------------------------

class FakeKernel:
    """The kernel's end of a datagram socketpair: replies are queued before the request is sent."""

    def __init__(self) -> None:
        ours, self.end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rtnl = Rtnl.__new__(Rtnl)
        self.rtnl._attach(ours)

    def reply(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.end.send(datagram)

    def request(self) -> tuple[int, int, int, bytes]:
        """(type, flags, seq, body) of the next request the client sent."""
        data = self.end.recv(65536)
        kind, flags, seq, start, end = next(iter_messages(data, len(data)))
        return kind, flags, seq, data[start:end]

    def close(self) -> None:
        self.rtnl.close()
        self.end.close()


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    fake = FakeKernel()
    yield fake
    fake.close()


def _link_reply(seq: int, name: str, index: int) -> bytes:
    body = IFINFOMSG.pack(0, 1, index, 0, 0) + encode_attribute(3, name.encode() + b"\0")
    return encode_message(RTM_NEWLINK, 0, seq, body) + _ack(seq)


def _first_message_as(handle: int, seq: int) -> bytes:
    """The first captured class message, renamed to class `handle`, with sequence number `seq`."""
    chunk = CAPTURED_DUMP[0]
    _, _, _, start, end = next(iter_messages(chunk, len(chunk)))
    message = bytearray(_with_seq(chunk[:end], seq))
    struct.pack_into("=I", message, start + 8, handle)
    return bytes(message)


def test_class_stats_reads_a_multi_part_dump_up_to_done_and_skips_other_requests_replies(
        kernel: FakeKernel) -> None:
    stale = _first_message_as(0x10077, 999)                       # a late reply to some other request
    other_qdisc = _first_message_as(0x20005, 1)                   # a class of qdisc 2: is not ours
    kernel.reply(stale, other_qdisc, *(_with_seq(chunk, 1) for chunk in CAPTURED_DUMP))
    assert kernel.rtnl.class_stats(3) == CAPTURED_STATS
    kind, flags, seq, body = kernel.request()
    assert (kind, seq) == (42, 1)                                # RTM_GETTCLASS
    assert flags & 0x300 == 0x300                                # NLM_F_DUMP
    assert TCMSG.unpack(body[:TCMSG.size]) == (0, 3, 0, 0x10000, 0)   # only the classes of qdisc 1:
    kernel.reply(*(_with_seq(chunk, 2) for chunk in CAPTURED_DUMP))   # the socket is ready for more
    assert kernel.rtnl.htb_classes(3) == CAPTURED_CLASSES


def test_a_dump_split_one_message_per_read_gives_the_same_counters(kernel: FakeKernel) -> None:
    messages = [chunk[start - NLMSGHDR.size:end] for chunk, _, start, end in _captured_messages()]
    kernel.reply(*(_with_seq(message, 1) for message in messages))
    assert kernel.rtnl.class_stats(3) == CAPTURED_STATS


def test_a_dump_the_kernel_ends_with_an_error_raises(kernel: FakeKernel) -> None:
    done = encode_message(NLMSG_DONE, NLM_F_MULTI, 1, NLMSGERR.pack(-errno.EMSGSIZE))
    kernel.reply(_with_seq(CAPTURED_DUMP[0], 1), done)
    with pytest.raises(NetlinkError) as caught:
        kernel.rtnl.class_stats(3)
    assert caught.value.errno == errno.EMSGSIZE
    assert "read class counters of ifindex 3" in str(caught.value)


def test_a_refused_change_raises_naming_operation_device_class_and_the_kernels_reason(kernel: FakeKernel) -> None:
    kernel.reply(_link_reply(1, "v0", 3))
    assert kernel.rtnl.ifindex("v0") == 3
    kernel.reply(_ack(2, errno.EBUSY, "HTB class in use"))
    with pytest.raises(NetlinkError) as caught:
        kernel.rtnl.delete_class(3, 0x1F)
    error = caught.value
    assert isinstance(error, OSError) and error.errno == errno.EBUSY
    assert str(error) == "[Errno 16] delete class 1:1f on v0 (ifindex 3): Device or resource busy: HTB class in use"
    kernel.request()                                             # the lookup
    kind, flags, seq, body = kernel.request()
    assert (kind, flags, seq) == (RTM_DELTCLASS, NLM_F_REQUEST | NLM_F_ACK, 2)
    assert body == encode_tcmsg(3, 0x1001F, 0)                   # no kind, no options


def test_an_acked_change_returns_and_sends_exactly_the_encoded_class_ignoring_stale_acks(kernel: FakeKernel) -> None:
    cls = HtbClass(minor=0x10, parent=0x2, rate_bps=1_000_000, ceil_bps=2_000_000, prio=1, quantum=1514)
    kernel.reply(_ack(77, errno.EBUSY, "a refusal of some earlier request"), _ack(1))
    kernel.rtnl.set_htb_class(3, cls, create=False)              # only the ack of seq 1 is ours
    kind, flags, seq, body = kernel.request()
    expected = encode_htb_class(1, 3, cls, create=False, psched=kernel.rtnl._psched)
    assert (kind, flags, seq) == (RTM_NEWTCLASS, NLM_F_REQUEST | NLM_F_ACK, 1)
    assert body == expected[NLMSGHDR.size:]


def test_a_rate_below_one_byte_per_second_is_refused_before_it_reaches_the_kernel(kernel: FakeKernel) -> None:
    with pytest.raises(NetlinkError) as caught:
        kernel.rtnl.set_htb_class(3, HtbClass(0x10, 0x2, 7, 8_000, 0, 1514), create=True)
    assert caught.value.errno == errno.EINVAL
    assert "add HTB class 1:10 (parent 1:2) on ifindex 3" in str(caught.value) and "rate_bps=7" in str(caught.value)
    kernel.end.setblocking(False)
    with pytest.raises(BlockingIOError):
        kernel.end.recv(65536)                                   # nothing was sent


def test_a_dump_read_only_in_part_is_drained_so_the_next_request_gets_its_own_reply(kernel: FakeKernel) -> None:
    kernel.reply(*(_with_seq(message, 1) for message in (chunk[start - NLMSGHDR.size:end]
                                                           for chunk, _, start, end in _captured_messages())))
    for _ in kernel.rtnl._dump_classes(3, "read HTB classes"):
        break                                                    # the reader stops after one class
    ours = kernel.rtnl._sock
    ours.setblocking(False)
    with pytest.raises(BlockingIOError):
        ours.recv(65536)                                         # the rest of the dump was read
    ours.setblocking(True)
    kernel.reply(*(_with_seq(chunk, 2) for chunk in CAPTURED_DUMP))
    assert kernel.rtnl.class_stats(3) == CAPTURED_STATS
