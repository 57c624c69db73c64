"""The SNMP fast path's own BER, keys and message checks (fastpath.py), against pyasn1 and pysnmp.

Interoperation with real managers (net-snmp, pysnmp's hlapi) and equality with pysnmp's answers
are tested in tests/integration/test_snmp_agent.py; here: the encodings byte for byte, the keys,
and that every message the fast path must not answer is declined, so pysnmp reports it.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.secmod.rfc3414 import localkey

from controller.domain.principal import Principal, Role
from controller.northbound.snmp.fastpath import (
    CFB,
    GET,
    GETNEXT,
    Decline,
    FastPath,
    _int,
    _wrap,
    decode_oid,
    encode_oid,
    encode_value,
    fast_user,
    localize,
)
from controller.northbound.snmp.view import MibTree, Scalars

ENGINE = bytes.fromhex("80007ed905c5a0000000000001")
ACME = Principal(Role.CUSTOMER, "acme")


@pytest.mark.parametrize("value", [
    rfc1902.Integer32(0), rfc1902.Integer32(127), rfc1902.Integer32(128), rfc1902.Integer32(-1),
    rfc1902.Integer32(-129), rfc1902.Integer32(2**31 - 1), rfc1902.Integer32(-(2**31)),
    rfc1902.Unsigned32(0), rfc1902.Unsigned32(255), rfc1902.Unsigned32(2**32 - 1), rfc1902.Counter32(2**31),
    rfc1902.TimeTicks(4242), rfc1902.Counter64(0), rfc1902.Counter64(2**64 - 1), rfc1902.Counter64(2**63),
    rfc1902.OctetString(b""), rfc1902.OctetString(b"acme-hq"), rfc1902.OctetString(b"\x00" * 200),
    rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 32473)), rfc1902.IpAddress("198.18.0.1"),
], ids=repr)
def test_values_encode_as_pyasn1_does(value: object) -> None:
    assert encode_value(value) == encoder.encode(value)


def test_the_exceptions_encode_as_pyasn1_does() -> None:
    for exception in (rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView):
        assert encode_value(exception) == encoder.encode(exception)


@given(st.tuples(st.integers(0, 2), st.integers(0, 39)).flatmap(
    lambda head: st.lists(st.integers(0, 2**32 - 1), max_size=20).map(lambda tail: head + tuple(tail))))
def test_oids_encode_as_pyasn1_does_and_decode_back(oid: tuple[int, ...]) -> None:
    encoded = encode_oid(oid)
    assert encoded == encoder.encode(rfc1902.ObjectIdentifier(oid))
    assert decode_oid(encoded[2:] if encoded[1] < 0x80 else encoded[3:]) == oid


@pytest.mark.parametrize(("name", "hash_function"), [("SHA", hashlib.sha1), ("SHA-256", hashlib.sha256),
                                                     ("SHA-512", hashlib.sha512)])
def test_keys_are_localized_as_pysnmp_does(name: str, hash_function: object) -> None:
    master = bytes(localkey.hash_passphrase(b"acme auth passphrase", hash_function))
    assert localize(master, ENGINE, hash_function) == bytes(localkey.localize_key(master, rfc1902.OctetString(ENGINE),
                                                                                  hash_function))


# ------------------------------------------------------------------------------------------ messages

USER = fast_user(ACME, "SHA-256", b"A" * 32, b"P" * 32, ENGINE)


def fast_path(boots: int = 3, now: int = 1000) -> FastPath:
    tree = MibTree([Scalars((1, 3, 6, 1, 4, 1, 32473, 1, 1), {1: lambda: rfc1902.OctetString(b"GSB")})])
    path = FastPath(lambda: tree, ENGINE, boots, lambda: now, 1000)
    path.users = {b"acme-nms": USER}
    return path


def request(*, pdu: int = GET, boots: int = 3, engine_time: int = 1000, flags: int = 0x07, user: bytes = b"acme-nms",
            engine: bytes = ENGINE, context: bytes = b"", bad_digest: bool = False) -> bytes:
    """An SNMPv3 authPriv request as a manager builds it (RFC 3412, 3414, 3826)."""
    varbinds = _wrap(0x30, _wrap(0x30, encode_oid((1, 3, 6, 1, 4, 1, 32473, 1, 1, 1, 0)) + b"\x05\x00"))
    scoped = _wrap(0x30, _wrap(0x04, engine) + _wrap(0x04, context)
                   + _wrap(pdu, _int(77) + _int(0) + _int(0) + varbinds))
    salt = b"\x00\x00\x00\x00\x00\x00\x00\x01"
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
    encryptor = Cipher(algorithms.AES(USER.priv_key), CFB(iv)).encryptor()
    encrypted = encryptor.update(scoped) + encryptor.finalize()
    usm = _wrap(0x30, _wrap(0x04, engine) + _int(boots) + _int(engine_time) + _wrap(0x04, user)
                + _wrap(0x04, bytes(24)) + _wrap(0x04, salt))
    header = _wrap(0x30, _int(4242) + _int(65507) + _wrap(0x04, bytes((flags,))) + _int(3))
    message = _wrap(0x30, _int(3) + header + _wrap(0x04, usm) + _wrap(0x04, encrypted))
    digest = hmac.new(USER.auth_key, message, hashlib.sha256).digest()[:24]
    if bad_digest:
        digest = bytes(24)
    at = message.index(bytes(24))
    return message[:at] + digest + message[at + 24:]


def test_a_well_formed_request_is_answered() -> None:
    answer = fast_path().answer(request())
    assert answer.startswith(b"\x30") and len(answer) > 80
    # The response's digest verifies with the user's key (the manager's check).
    at = answer.index(b"\x04\x18") + 2
    signed = answer[:at] + bytes(24) + answer[at + 24:]
    assert hmac.new(USER.auth_key, signed, hashlib.sha256).digest()[:24] == answer[at:at + 24]


@pytest.mark.parametrize(("why", "message"), [
    ("authNoPriv", request(flags=0x05)),
    ("unknown user", request(user=b"mallory")),
    ("discovery: another engine ID", request(engine=b"")),
    ("wrong digest", request(bad_digest=True)),
    ("another boot", request(boots=2)),
    ("outside the 150 s window", request(engine_time=1151)),
    ("another context", request(context=b"private")),
    ("a SET", request(pdu=0xA3)),
    ("SNMPv2c", _wrap(0x30, _int(1) + _wrap(0x04, b"public") + _wrap(GETNEXT, _int(1) + _int(0) + _int(0)
                                                                     + _wrap(0x30, b"")))),
    ("truncated", request()[:60]),
    ("garbage", b"\x30\x84\xff\xff\xff\xff"),
])
def test_what_the_fast_path_must_not_answer_is_declined(why: str, message: bytes) -> None:
    with pytest.raises(Decline):
        fast_path().answer(message)


def test_inside_the_time_window_is_answered() -> None:
    assert fast_path(now=1000).answer(request(engine_time=1150))
