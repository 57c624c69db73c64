"""NETCONF server pieces: RFC 6242 framing, hardened XML parsing, subtree filters (RFC 6241 6),
edit-config planning and rpc-error building."""

from __future__ import annotations

import copy
import dataclasses
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree

from controller.domain.catalog import load_catalog
from controller.domain.errors import (
    CapacityExceeded,
    ClassNotAllowed,
    Forbidden,
    InvalidValue,
    NotFound,
    OutOfBounds,
    TooSoon,
)
from controller.domain.sls import SlsSetting
from controller.northbound.netconf import rpc
from controller.northbound.netconf.framing import (
    EOM,
    FramingLost,
    MalformedMessage,
    MessageReader,
    frame,
    parse_xml,
)
from tests.unit.builders import BRONZE, GOLD, SILVER, T0, M, sla, sls

NC, CSM = rpc.NC, rpc.CSM


def reader(chunked: bool = False, limit: int | None = None) -> MessageReader:
    r = MessageReader() if limit is None else MessageReader(max_message_bytes=limit)
    r.chunked = chunked
    return r


def drain(r: MessageReader) -> list[bytes]:
    out = []
    while (message := r.next()) is not None:
        out.append(message)
    return out


# ------------------------------------------------------------------------------ end-of-message framing

def test_eom_several_messages_in_one_feed_come_out_one_at_a_time():
    r = reader()
    r.feed(b"<a/>]]>]]><b/>]]>]]><c/>]]>]]><d")
    assert r.next() == b"<a/>"
    assert r.next() == b"<b/>"
    assert r.next() == b"<c/>"
    assert r.next() is None
    r.feed(b"/>]]>]]>")
    assert r.next() == b"<d/>"
    assert r.next() is None


def test_eom_message_split_at_every_byte_boundary():
    message = b"<rpc message-id='1'><get/></rpc>"
    data = frame(message, chunked=False)
    for split in range(len(data)):
        r = reader()
        r.feed(data[:split])
        assert r.next() is None, split
        r.feed(data[split:])
        assert r.next() == message, split
        assert r.next() is None


def test_eom_message_fed_byte_by_byte_appears_only_at_the_last_byte():
    message = b"<hello/>"
    data = frame(message, chunked=False)
    r = reader()
    for byte in data[:-1]:
        r.feed(bytes([byte]))
        assert r.next() is None
    r.feed(data[-1:])
    assert r.next() == message


def test_eom_terminator_split_across_feeds():
    r = reader()
    r.feed(b"<x/>]]>]")
    assert r.next() is None
    r.feed(b"]>")
    assert r.next() == b"<x/>"


def test_eom_without_terminator_over_limit_loses_framing():
    r = reader(limit=16)
    r.feed(b"a" * 16)
    assert r.next() is None
    r.feed(b"a")
    with pytest.raises(FramingLost):
        r.next()


def test_eom_message_of_exactly_the_limit_fed_byte_by_byte_is_accepted():
    r = reader(limit=10)
    got = []
    for byte in frame(b"a" * 10, chunked=False):
        r.feed(bytes([byte]))
        got += drain(r)
    assert got == [b"a" * 10]


def test_eom_message_over_limit_with_terminator_in_same_feed_is_refused():
    r = reader(limit=10)
    r.feed(b"a" * 20 + EOM)
    with pytest.raises(FramingLost):
        r.next()


# ------------------------------------------------------------------------------ chunked framing

MULTI = b"\n#4\n<rpc\n#1\n \n#16\nmessage-id='7'/>\n##\n"
MULTI_MESSAGE = b"<rpc message-id='7'/>"


def test_chunked_message_in_several_chunks():
    r = reader(chunked=True)
    r.feed(MULTI)
    assert r.next() == MULTI_MESSAGE
    assert r.next() is None


def test_chunked_split_at_every_byte_boundary():
    for split in range(len(MULTI)):
        r = reader(chunked=True)
        r.feed(MULTI[:split])
        assert r.next() is None, split
        r.feed(MULTI[split:])
        assert r.next() == MULTI_MESSAGE, split


def test_chunked_fed_byte_by_byte():
    r = reader(chunked=True)
    got = []
    for byte in MULTI:
        r.feed(bytes([byte]))
        got += drain(r)
    assert got == [MULTI_MESSAGE]


def test_chunked_end_of_chunks_split_across_feeds():
    r = reader(chunked=True)
    r.feed(b"\n#3\nabc\n#")
    assert r.next() is None
    r.feed(b"#")
    assert r.next() is None
    r.feed(b"\n")
    assert r.next() == b"abc"


def test_chunked_two_messages_in_one_feed():
    r = reader(chunked=True)
    r.feed(frame(b"one", True) + frame(b"two", True))
    assert drain(r) == [b"one", b"two"]


def test_chunk_data_may_contain_framing_sequences():
    message = b"a\n##\nb]]>]]>\n#3\nc"
    r = reader(chunked=True)
    r.feed(frame(message, True))
    assert drain(r) == [message]


def test_eom_hello_then_chunked_rpc_in_one_feed():
    hello = b"<hello xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'/>"
    rpc_message = b"<rpc message-id='1'><get/></rpc>"
    r = reader()
    r.feed(frame(hello, False) + frame(rpc_message, True))
    assert r.next() == hello
    r.chunked = True
    assert r.next() == rpc_message
    assert r.next() is None


@pytest.mark.parametrize("stream", [
    b"\n#0\n" + b"x" * 20,
    b"\n#abc\n" + b"x" * 20,
    b"\n#5hello world, no newline\n##\n",
    b"\n#12345678901\nxxxxx",
    b"#3\nabc\n##\n",
    b"garbage!",
], ids=["zero", "letters", "no-newline", "11-digits", "no-leading-newline", "garbage"])
def test_chunked_bad_header_loses_framing(stream):
    r = reader(chunked=True)
    r.feed(stream)
    with pytest.raises(FramingLost):
        r.next()


@pytest.mark.parametrize("stream", [b"\n#0\n", b"\n#0\n\n##\n", b"\n#abc\n", b"\n#007\n"])
def test_chunked_short_complete_bad_header_loses_framing_at_once(stream):
    r = reader(chunked=True)
    r.feed(stream)
    with pytest.raises(FramingLost):
        r.next()


def test_ten_digit_header_is_accepted_as_a_header():
    r = reader(chunked=True, limit=2 * 10**9)
    r.feed(b"\n#1000000000\nabc")
    assert r.next() is None  # a valid header; the chunk is still arriving


def test_end_of_chunks_without_a_chunk_loses_framing():
    r = reader(chunked=True)
    r.feed(b"\n##\n")
    with pytest.raises(FramingLost):
        r.next()


def test_chunked_sizes_adding_past_limit_lose_framing():
    r = reader(chunked=True, limit=10)
    r.feed(b"\n#6\nabcdef\n#6\nabcdef\n##\n")
    with pytest.raises(FramingLost):
        r.next()


def test_chunk_header_over_limit_loses_framing_before_the_data():
    r = reader(chunked=True, limit=10)
    r.feed(b"\n#11\n")
    with pytest.raises(FramingLost):
        r.next()


def test_chunked_message_of_exactly_the_limit_is_accepted():
    r = reader(chunked=True, limit=10)
    r.feed(b"\n#4\nabcd\n#6\nefghij\n##\n")
    assert r.next() == b"abcdefghij"


def test_chunked_limit_is_per_message():
    r = reader(chunked=True, limit=10)
    r.feed(frame(b"a" * 10, True) + frame(b"b" * 10, True))
    assert drain(r) == [b"a" * 10, b"b" * 10]


def test_chunk_split_across_feeds_counts_once_towards_limit():
    r = reader(chunked=True, limit=100)
    r.feed(b"\n#60\n" + b"a" * 30)
    assert r.next() is None
    r.feed(b"a" * 30 + b"\n##\n")
    assert r.next() == b"a" * 60


def _feed_in_pieces(r: MessageReader, data: bytes, splits: list[int]) -> list[bytes]:
    got, start = [], 0
    for cut in sorted(set(splits)) + [len(data)]:
        r.feed(data[start:cut])
        got += drain(r)
        start = cut
    return got


@given(message=st.binary(max_size=300), splits=st.lists(st.integers(0, 330), max_size=8))
def test_eom_frame_round_trips(message, splits):
    data = frame(message, chunked=False)
    assume(data.find(EOM) == len(message))  # base:1.0 cannot carry a message that forms ]]>]]> early
    assert _feed_in_pieces(reader(), data, [s for s in splits if s <= len(data)]) == [message]


@given(message=st.binary(min_size=1, max_size=300), splits=st.lists(st.integers(0, 330), max_size=8))
def test_chunked_frame_round_trips(message, splits):
    data = frame(message, chunked=True)
    assert _feed_in_pieces(reader(chunked=True), data, [s for s in splits if s <= len(data)]) == [message]


# ------------------------------------------------------------------------------ parse_xml

LOL = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def test_parse_xml_ordinary_rpc():
    root = parse_xml(b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get/></rpc>')
    assert root.tag == f"{{{NC}}}rpc"
    assert root.get("message-id") == "1"
    assert root[0].tag == f"{{{NC}}}get"


@pytest.mark.parametrize("message", [
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    LOL,
    b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    b'<?xml version="1.0"?><!DOCTYPE x PUBLIC "-//A//B" "file:///etc/passwd"><x/>',
    b"<x>&e;</x>",
    b"<x><y></x>",
    b"<x>",
    b"",
    b"   ",
    b"\xff\xfe\x00\x80garbage",
    b"<x>\xff\xfe</x>",
], ids=["xxe", "billion-laughs", "external-dtd", "public-dtd", "undefined-entity", "mismatched", "unclosed",
        "empty", "blank", "garbage", "bad-utf8"])
def test_parse_xml_refuses_quickly(message):
    start = time.monotonic()
    with pytest.raises(MalformedMessage):
        parse_xml(message)
    assert time.monotonic() - start < 1.0


def test_parse_xml_refuses_utf16_doctype():
    text = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    with pytest.raises(MalformedMessage):
        parse_xml(text.encode("utf-16"))


# ------------------------------------------------------------------------------ subtree filter

def tree(config_only: bool = False) -> etree._Element:
    return rpc.data_tree([(dataclasses.replace(sla(), id=5), dataclasses.replace(sls(GOLD, 2 * M), sla_id=5)),
                          (dataclasses.replace(sla(), id=7), dataclasses.replace(sls(BRONZE, 9 * M), sla_id=7))],
                         config_only=config_only, state=rpc.StateData(load_catalog(), T0))


def flt(inner: str) -> etree._Element:
    return etree.fromstring(f'<nc:filter xmlns:nc="{NC}" type="subtree">{inner}</nc:filter>')


def q(inner: str) -> str:
    return f'<csm xmlns="{CSM}">{inner}</csm>'


def leaves(element: etree._Element, prefix: str = "") -> list[tuple[str, str]]:
    path = f"{prefix}/{etree.QName(element).localname}"
    if len(element) == 0:
        return [(path, element.text or "")]
    return [leaf for child in element for leaf in leaves(child, path)]


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


def test_filter_selection_node_returns_whole_tree():
    data = tree()
    [result] = rpc.subtree_filter(data, flt(q("")))
    assert c14n(result) == c14n(data)


def entries(data: etree._Element) -> list[etree._Element]:
    return data.findall(f"{{{CSM}}}sla")


def test_filter_containment_with_selection_returns_all_entries():
    data = tree()
    [result] = rpc.subtree_filter(data, flt(q("<sla/>")))
    assert [c14n(e) for e in result] == [c14n(e) for e in entries(data)]  # the entries, not the service


def test_filter_result_is_a_copy():
    data = tree()
    [result] = rpc.subtree_filter(data, flt(q("")))
    entries(result)[0].find(f"{{{CSM}}}id").text = "99"
    assert entries(data)[0].find(f"{{{CSM}}}id").text == "5"


def test_filter_content_match_returns_whole_matching_entry_only():
    data = tree()
    [result] = rpc.subtree_filter(data, flt(q("<sla><id>5</id></sla>")))
    assert len(result) == 1
    assert c14n(result[0]) == c14n(entries(data)[0])


def test_filter_content_match_with_containment_returns_id_and_selected_leaf():
    [result] = rpc.subtree_filter(tree(), flt(q("<sla><id>5</id><sls><class/></sls></sla>")))
    assert leaves(result) == [("/csm/sla/id", "5"), ("/csm/sla/sls/class", "gold")]


def test_filter_nested_selection_across_all_entries():
    [result] = rpc.subtree_filter(tree(), flt(q("<sla><sls><bandwidth/></sls></sla>")))
    assert leaves(result) == [("/csm/sla/sls/bandwidth", str(2 * M)), ("/csm/sla/sls/bandwidth", str(9 * M))]


def test_filter_content_match_on_leaf_below_list():
    [result] = rpc.subtree_filter(tree(), flt(q("<sla><sls><class>bronze</class><bandwidth/></sls></sla>")))
    assert leaves(result) == [("/csm/sla/sls/class", "bronze"), ("/csm/sla/sls/bandwidth", str(9 * M))]


def test_filter_content_match_matching_nothing_returns_nothing():
    assert rpc.subtree_filter(tree(), flt(q("<sla><id>6</id></sla>"))) == []
    assert rpc.subtree_filter(tree(), flt(q("<sla><sls><class>silver</class></sls></sla>"))) == []


def test_filter_unqualified_nodes_match_any_namespace():
    [result] = rpc.subtree_filter(tree(), flt("<csm><sla><id>7</id><sls><bandwidth/></sls></sla></csm>"))
    assert leaves(result) == [("/csm/sla/id", "7"), ("/csm/sla/sls/bandwidth", str(9 * M))]


def test_filter_in_another_namespace_matches_nothing():
    assert rpc.subtree_filter(tree(), flt('<csm xmlns="urn:other"/>')) == []
    assert rpc.subtree_filter(tree(), flt(f'<csm xmlns="{CSM}"><sla xmlns="urn:other"/></csm>')) == []


def test_filter_multiple_sibling_selection_nodes():
    [result] = rpc.subtree_filter(tree(), flt(q("<sla><id>7</id><sls><class/><bandwidth/></sls></sla>")))
    assert leaves(result) == [("/csm/sla/id", "7"), ("/csm/sla/sls/class", "bronze"),
                              ("/csm/sla/sls/bandwidth", str(9 * M))]


def test_filter_selection_of_contract_subtree():
    wanted = "<sla><id>5</id><contract><access><router/></access></contract></sla>"
    [result] = rpc.subtree_filter(tree(), flt(q(wanted)))
    assert leaves(result) == [("/csm/sla/id", "5"), ("/csm/sla/contract/access/router", "edge1")]


def test_filter_empty_returns_nothing():
    assert rpc.subtree_filter(tree(), flt("")) == []


def test_filter_two_sibling_list_instances_select_both():
    [result] = rpc.subtree_filter(tree(), flt(q("<sla><id>5</id></sla><sla><id>7</id></sla>")))
    assert [e.findtext(f"{{{CSM}}}id") for e in result] == ["5", "7"]


# ------------------------------------------------------------------------------ edit-config planning

def config(body: str, top: str | None = None) -> etree._Element:
    inner = top if top is not None else q(body)
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{inner}</config>')


def entry(sla_id: int | str, sls_body: str, attrs: str = "", sls_attrs: str = "") -> str:
    return f"<sla {attrs}><id>{sla_id}</id><sls {sls_attrs}>{sls_body}</sls></sla>"


def test_plan_merge_class_and_bandwidth_for_two_slas():
    plan = rpc.plan_edit(config(entry(5, "<class>gold</class><bandwidth>2000000</bandwidth>")
                                + entry(7, "<class>silver</class><bandwidth>3000000</bandwidth>")), "merge")
    assert plan.changes == {5: {"class": GOLD, "bandwidth": 2_000_000}, 7: {"class": SILVER, "bandwidth": 3_000_000}}


def test_plan_bandwidth_alone():
    assert rpc.plan_edit(config(entry(5, "<bandwidth> 3000000 </bandwidth>")), "merge").changes == \
        {5: {"bandwidth": 3_000_000}}


@pytest.mark.parametrize("text", ["gold", "csm:gold", " gold "])
def test_plan_class_plain_or_prefixed(text):
    # A prefixed identity needs its prefix declared (RFC 7950 9.10.3).
    leaf = f'<class xmlns:csm="{CSM}">{text}</class>'
    assert rpc.plan_edit(config(entry(5, leaf)), "merge").changes == {5: {"class": GOLD}}


def test_plan_class_with_a_foreign_prefix_is_invalid():
    with pytest.raises(rpc.RpcError) as refused:
        rpc.plan_edit(config(entry(5, '<class xmlns:x="urn:other">x:gold</class>')), "merge")
    assert refused.value.tag == "invalid-value"


def test_plan_largest_uint64_bandwidth_accepted():
    assert rpc.plan_edit(config(entry(5, f"<bandwidth>{2**64 - 1}</bandwidth>")), "merge").changes == \
        {5: {"bandwidth": 2**64 - 1}}


def test_plan_replace_with_both_leaves():
    plan = rpc.plan_edit(config(entry(5, "<class>bronze</class><bandwidth>1</bandwidth>",
                                      sls_attrs='nc:operation="replace"')), "merge")
    assert plan.changes == {5: {"class": BRONZE, "bandwidth": 1}}


def test_plan_entry_without_sls_changes_nothing():
    assert rpc.plan_edit(config("<sla><id>5</id></sla>"), "merge").changes == {}


SLA5 = "/csm:csm/csm:sla[csm:id='5']"
SLS5 = SLA5 + "/csm:sls"


@pytest.mark.parametrize("body,top,default,tag,path", [
    ("", '<foo xmlns="urn:other"/>', "merge", "unknown-element", None),
    ("", '<csm xmlns="urn:other"/>', "merge", "unknown-element", None),
    ("<other/>", None, "merge", "unknown-element", None),
    ("<sla><sls><bandwidth>1</bandwidth></sls></sla>", None, "merge", "missing-element", None),
    ("<sla><id>x</id><sls><bandwidth>1</bandwidth></sls></sla>", None, "merge", "missing-element", None),
    (entry(5, "", sls_attrs='nc:operation="delete"'), None, "merge", "operation-failed", SLS5),
    (entry(5, "", sls_attrs='nc:operation="remove"'), None, "merge", "operation-failed", SLS5),
    (entry(5, "", sls_attrs='nc:operation="create"'), None, "merge", "data-exists", SLS5),
    (entry(5, '<bandwidth nc:operation="delete">1</bandwidth>'), None, "merge", "operation-failed",
     SLS5 + "/csm:bandwidth"),
    (entry(5, '<class nc:operation="remove">gold</class>'), None, "merge", "operation-failed",
     SLS5 + "/csm:class"),
    (entry(5, "<version>3</version>"), None, "merge", "invalid-value", SLS5 + "/csm:version"),
    (entry(5, "<changed-by>me</changed-by>"), None, "merge", "invalid-value", SLS5 + "/csm:changed-by"),
    (entry(5, "<colour>red</colour>"), None, "merge", "unknown-element", SLS5 + "/csm:colour"),
    (entry(5, "<bandwidth>fast</bandwidth>"), None, "merge", "invalid-value", SLS5 + "/csm:bandwidth"),
    (entry(5, "<bandwidth>-1</bandwidth>"), None, "merge", "invalid-value", SLS5 + "/csm:bandwidth"),
    (entry(5, "<bandwidth>1.5</bandwidth>"), None, "merge", "invalid-value", SLS5 + "/csm:bandwidth"),
    (entry(5, "<bandwidth/>"), None, "merge", "invalid-value", SLS5 + "/csm:bandwidth"),
    (entry(5, f"<bandwidth>{2**64}</bandwidth>"), None, "merge", "invalid-value", SLS5 + "/csm:bandwidth"),
    (entry(5, "<class>platinum</class>"), None, "merge", "invalid-value", SLS5 + "/csm:class"),
    (entry(5, "<class>Gold</class>"), None, "merge", "invalid-value", SLS5 + "/csm:class"),
    (entry(5, "<class>gold</class>", sls_attrs='nc:operation="replace"'), None, "merge", "missing-element", SLS5),
    (entry(5, "<bandwidth>1</bandwidth>"), None, "replace", "missing-element", SLS5),
    ("<sla><id>5</id><contract><name>x</name></contract></sla>", None, "merge", "access-denied", SLA5),
    ("", f'<csm xmlns="{CSM}" xmlns:nc="{NC}" nc:operation="replace"/>', "merge", "operation-not-supported",
     "/csm:csm"),
    ("", f'<csm xmlns="{CSM}" xmlns:nc="{NC}" nc:operation="delete"/>', "merge", "operation-not-supported",
     "/csm:csm"),
], ids=["unknown-top", "csm-wrong-ns", "unknown-in-csm", "no-id", "id-not-numeric", "delete-sls", "remove-sls",
        "create-sls", "delete-leaf", "remove-class", "version",
        "changed-by", "unknown-leaf", "bw-word", "bw-negative", "bw-decimal", "bw-empty", "bw-2**64",
        "class-unknown", "class-case", "replace-one-leaf", "default-replace-one-leaf", "contract",
        "replace-csm", "delete-csm"])
def test_plan_refusals(body, top, default, tag, path):
    with pytest.raises(rpc.RpcError) as caught:
        rpc.plan_edit(config(body, top), default)
    assert caught.value.tag == tag
    assert caught.value.path == path


@pytest.mark.parametrize("operation", ["create", "delete", "remove"])
def test_plan_leaves_entry_operations_to_be_judged_against_what_exists(operation):
    # Whether an SLA exists (for this principal) is the service layer's to say: apply_edit judges them.
    plan = rpc.plan_edit(config(entry(5, "<bandwidth>1</bandwidth>", attrs=f'nc:operation="{operation}"')), "merge")
    assert plan.entries == {5: operation} and plan.changes == {}


def test_plan_refusal_details_name_the_bad_element_and_value():
    with pytest.raises(rpc.RpcError) as caught:
        rpc.plan_edit(config(entry(5, "<class>platinum</class>")), "merge")
    assert caught.value.info == {"value": "platinum"}
    with pytest.raises(rpc.RpcError) as caught:
        rpc.plan_edit(config("<sla><id>5</id><contract/></sla>"), "merge")
    assert caught.value.info == {"bad-element": "contract"}
    assert caught.value.error_type == "protocol"


@pytest.mark.parametrize("body", [entry(5, "<bandwidth>\u00b2</bandwidth>"),
                                  "<sla><id>\u00b2</id><sls><bandwidth>1</bandwidth></sls></sla>"],
                         ids=["bandwidth", "id"])
def test_plan_superscript_digit_is_refused_as_rpc_error(body):
    with pytest.raises(rpc.RpcError):
        rpc.plan_edit(config(body), "merge")


def test_plan_non_ascii_digits_are_invalid_value():
    with pytest.raises(rpc.RpcError) as caught:
        rpc.plan_edit(config(entry(5, "<bandwidth>\u0661\u0662</bandwidth>")), "merge")
    assert caught.value.tag == "invalid-value"


# ------------------------------------------------------------------------------ rpc-error element

def nc(name: str) -> str:
    return f"{{{NC}}}{name}"


def test_rpc_error_element_has_every_field():
    error = rpc.RpcError("invalid-value", "too much", path=rpc.sls_path(5, "bandwidth"), app_tag="out-of-bounds",
                         info={"bad-element": "bandwidth", "bound": 4 * M, "value": 9 * M})
    element = etree.fromstring(etree.tostring(error.element()))  # as a client would see it
    assert element.tag == nc("rpc-error")
    assert element.findtext(nc("error-type")) == "application"
    assert element.findtext(nc("error-tag")) == "invalid-value"
    assert element.findtext(nc("error-severity")) == "error"
    assert element.findtext(nc("error-app-tag")) == "out-of-bounds"
    message = element.find(nc("error-message"))
    assert message.text == "too much"
    assert message.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    info = element.find(nc("error-info"))
    assert info.findtext(nc("bad-element")) == "bandwidth"
    assert info.findtext(f"{{{CSM}}}bound") == str(4 * M)
    assert info.findtext(f"{{{CSM}}}value") == str(9 * M)


def test_rpc_error_path_resolves_against_the_data():
    error = rpc.RpcError("invalid-value", "x", path=rpc.sls_path(7, "bandwidth"))
    element = etree.fromstring(etree.tostring(error.element()))
    path = element.find(nc("error-path"))
    [found] = tree().getroottree().xpath(path.text, namespaces={"csm": path.nsmap["csm"]})
    assert found.text == str(9 * M)
    assert path.nsmap["csm"] == CSM


def test_rpc_error_element_omits_absent_optional_fields():
    element = rpc.RpcError("operation-failed", "no", error_type="protocol").element()
    assert element.findtext(nc("error-type")) == "protocol"
    for name in ("error-app-tag", "error-path", "error-info"):
        assert element.find(nc(name)) is None


# ------------------------------------------------------------------------------ refusal_to_rpc_error

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("error,tag,leaf", [
    (OutOfBounds("too much", field="sls.bandwidth", bound=4 * M, value=9 * M), "invalid-value", "bandwidth"),
    (ClassNotAllowed("no gold", field="sls.class", bound="silver", value="gold"), "invalid-value", "class"),
    (ClassNotAllowed("no gold", bound="silver", value="gold"), "invalid-value", "class"),
    (InvalidValue("bad", field="sls.bandwidth", bound=1, value=0), "invalid-value", "bandwidth"),
    (InvalidValue("bad class", field="sls.class", bound="gold", value="x"), "invalid-value", "class"),
    (CapacityExceeded("full", link="core-egress", share="gold", bound=8 * M, value=12 * M), "resource-denied",
     "bandwidth"),
], ids=["out-of-bounds", "class-not-allowed", "class-not-allowed-no-field", "invalid-value", "invalid-class",
        "capacity"])
def test_refusal_maps_to_tag_path_app_tag_and_info(error, tag, leaf):
    mapped = rpc.refusal_to_rpc_error(error, 5)
    assert mapped.tag == tag
    assert mapped.error_type == "application"
    assert mapped.path == f"{SLS5}/csm:{leaf}"
    assert mapped.app_tag == error.code
    info = mapped.element().find(nc("error-info"))
    assert info.findtext(f"{{{CSM}}}bound") == str(error.bound)
    assert info.findtext(f"{{{CSM}}}value") == str(error.value)


def test_too_soon_is_operation_failed_with_times_as_iso():
    later = NOW + timedelta(minutes=5)
    error = TooSoon("wait", next_allowed=later, min_interval=timedelta(minutes=5), requested_at=NOW)
    mapped = rpc.refusal_to_rpc_error(error, 5)
    assert (mapped.tag, mapped.app_tag) == ("operation-failed", "too-soon")
    assert mapped.path.startswith(SLS5)
    assert mapped.info["bound"] == later.isoformat()
    assert mapped.info["value"] == NOW.isoformat()
    info = mapped.element().find(nc("error-info"))
    assert info.findtext(f"{{{CSM}}}bound") == later.isoformat()


def test_not_found_is_protocol_access_denied():
    mapped = rpc.refusal_to_rpc_error(NotFound("no such SLA"), 5)
    assert (mapped.tag, mapped.error_type, mapped.app_tag) == ("access-denied", "protocol", "not-found")
    assert mapped.path == SLS5


def test_forbidden_is_protocol_access_denied():
    mapped = rpc.refusal_to_rpc_error(Forbidden("not your role"), 5)
    assert (mapped.tag, mapped.error_type, mapped.app_tag) == ("access-denied", "protocol", "forbidden")
    assert mapped.message == "not your role"


def test_refusal_without_sla_id_has_no_path():
    mapped = rpc.refusal_to_rpc_error(OutOfBounds("x", bound=1, value=2), None)
    assert mapped.path is None
    assert mapped.element().find(nc("error-path")) is None


FILTERS = ["", "<sla/>", "<sla><id>5</id></sla>", "<sla><id> 7 </id><sls><class/></sls></sla>",
           "<sla><id>5</id></sla><sla><id>7</id></sla>", "<sla><id>5</id></sla><sla><sls/></sla>",
           "<sla><id>6</id></sla>", "<sla><id>x</id></sla>", "<sla><sls><class>bronze</class></sls></sla>",
           "<other/>"]


def test_reading_only_the_slas_a_filter_names_by_key_selects_the_same():
    """filtered_sla_ids lets the server read fewer SLAs; the filter must select exactly what it
    selects from all of them."""
    data = tree()
    for inner in FILTERS + ["ALONE"]:
        chosen = flt('<netconf-state xmlns="urn:x"/>') if inner == "ALONE" else flt(q(inner))
        keyed = rpc.filtered_sla_ids(chosen)
        narrowed = copy.deepcopy(data)
        for entry in entries(narrowed):
            if keyed is not None and int(entry.findtext(f"{{{CSM}}}id")) not in keyed:
                narrowed.remove(entry)
        assert [c14n(r) for r in rpc.subtree_filter(narrowed, chosen)] == \
            [c14n(r) for r in rpc.subtree_filter(data, chosen)], inner
    assert rpc.filtered_sla_ids(flt(q("<sla><id>5</id></sla><sla><id>7</id></sla>"))) == {5, 7}
    assert rpc.filtered_sla_ids(flt(q("<sla/>"))) is None


def test_the_config_text_is_the_config_tree():
    settings = [SlsSetting(5, GOLD, 2 * M), SlsSetting(7, BRONZE, 9 * M)]
    assert c14n(etree.fromstring(rpc.config_text(settings))) == c14n(tree(config_only=True))
    assert c14n(rpc.config_tree(settings)) == c14n(tree(config_only=True))
