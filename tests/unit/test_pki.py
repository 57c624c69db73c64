"""The lab CA (controller.southbound.pki): what it writes, what it refuses, and that gRPC's TLS
stack accepts its certificates — a real grpc.aio server on 127.0.0.1 with the health service and
a "who am I" method that answers peer_identity() of the caller."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from controller.southbound.pki import (
    Issued,
    PkiError,
    channel_credentials,
    create_ca,
    issue,
    peer_identity,
    server_credentials,
)

TIMEOUT_S = 5.0
WHO_AM_I = "/csmm.test.Identity/WhoAmI"


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """A CA with the controller's certificate and router edge1's."""
    directory = tmp_path / "pki"
    create_ca(directory)
    issue(directory, "controller", role="controller")
    issue(directory, "edge1", role="agent")
    return directory


def agent_credentials(directory: Path, name: str = "edge1", ca: Path | None = None) -> grpc.ChannelCredentials:
    return channel_credentials(ca or directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}.key")


async def who_am_i(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return (peer_identity(context.auth_context()) or "").encode()


@asynccontextmanager
async def serving(ca_directory: Path | None) -> AsyncIterator[str]:
    """The controller's listener as production builds it: mTLS from `ca_directory`, or plaintext
    when None. Yields the target to dial."""
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service, method = WHO_AM_I.strip("/").split("/")
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(who_am_i)})])
    if ca_directory is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", server_credentials(ca_directory, "controller"))
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        yield f"127.0.0.1:{port}"     # no ssl_target_name_override: the certificate names 127.0.0.1
    finally:
        await server.stop(None)


def call(ca_directory: Path | None, credentials: grpc.ChannelCredentials | None) -> tuple[int, str | None]:
    """Ask the server for its health and for the caller's identity, as a client with `credentials`
    (None: plaintext)."""
    async def scenario() -> tuple[int, str | None]:
        async with serving(ca_directory) as target:
            channel = (grpc.aio.insecure_channel(target) if credentials is None
                       else grpc.aio.secure_channel(target, credentials))
            async with channel:
                check = health_pb2_grpc.HealthStub(channel).Check
                status = (await check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)).status
                identity = await channel.unary_unary(WHO_AM_I)(b"", timeout=TIMEOUT_S)
                return status, identity.decode() or None
    return asyncio.run(scenario())


def refusal(ca_directory: Path, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        call(ca_directory, credentials)
    return refused.value.code()


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------- the channel

def test_agent_with_its_certificate_is_served_and_known_by_its_router_id(ca_dir: Path) -> None:
    status, identity = call(ca_dir, agent_credentials(ca_dir))

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert identity == "edge1"


def test_client_without_a_certificate_is_refused(ca_dir: Path) -> None:
    server_auth_only = grpc.ssl_channel_credentials(root_certificates=(ca_dir / "ca.pem").read_bytes())

    assert refusal(ca_dir, server_auth_only) == grpc.StatusCode.UNAVAILABLE


def test_client_certificate_from_another_ca_is_refused(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    create_ca(other, common_name="Someone else's CA")
    issue(other, "edge1", role="agent")     # the same router id does not help

    assert refusal(ca_dir, agent_credentials(other, ca=ca_dir / "ca.pem")) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(ca_dir: Path) -> None:
    assert refusal(ca_dir, None) == grpc.StatusCode.UNAVAILABLE


def test_controller_certificate_cannot_act_as_an_agent(ca_dir: Path) -> None:
    # gRPC's TLS stack checks the extended key usage: a serverAuth-only certificate is no client's
    assert refusal(ca_dir, agent_credentials(ca_dir, name="controller")) == grpc.StatusCode.UNAVAILABLE


def test_agent_refuses_a_controller_its_ca_did_not_sign(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    create_ca(other)

    assert refusal(ca_dir, agent_credentials(ca_dir, ca=other / "ca.pem")) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_peer_has_no_identity() -> None:
    status, identity = call(None, None)

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert identity is None


def test_reissued_certificate_replaces_the_old_one_and_works(ca_dir: Path) -> None:
    before = load(ca_dir / "edge1.pem").serial_number
    (ca_dir / "edge1.key").chmod(0o644)      # even a key someone loosened comes back owner-only

    issue(ca_dir, "edge1", role="agent")

    assert load(ca_dir / "edge1.pem").serial_number != before
    assert mode(ca_dir / "edge1.key") == 0o600
    assert call(ca_dir, agent_credentials(ca_dir)) == (health_pb2.HealthCheckResponse.SERVING, "edge1")


# ---------------------------------------------------------------------------------------- peer_identity

def test_identity_is_the_common_name_of_a_tls_peer() -> None:
    context = {"transport_security_type": [b"ssl"], "x509_common_name": [b"edge1"],
               "x509_subject_alternative_name": [b"edge1.routers.example.net"],
               "peer_dns": [b"edge1.routers.example.net"]}

    assert peer_identity(context) == "edge1"


def test_identity_of_a_certificate_without_common_name_is_its_only_dns_name() -> None:
    assert peer_identity({"transport_security_type": [b"ssl"], "peer_dns": [b"edge2"]}) == "edge2"
    assert peer_identity({"transport_security_type": [b"ssl"], "peer_dns": [b"edge2", b"edge3"]}) is None


def test_plaintext_or_unnamed_peer_has_no_identity() -> None:
    assert peer_identity({"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]}) is None
    assert peer_identity({}) is None
    assert peer_identity({"transport_security_type": [b"ssl"]}) is None


# ---------------------------------------------------------------------------------------- files

def test_ca_files_and_private_directory_are_created(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "pki"

    issued = create_ca(directory)

    assert issued == Issued(directory / "ca.pem", directory / "ca.key")
    assert mode(directory) == 0o700
    assert mode(issued.key) == 0o600


def test_key_files_are_readable_by_their_owner_only(ca_dir: Path) -> None:
    for key in ("ca.key", "controller.key", "edge1.key"):
        assert mode(ca_dir / key) == 0o600, key


def test_create_ca_refuses_to_overwrite_a_ca(ca_dir: Path) -> None:
    before = (ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca.key").read_bytes()

    with pytest.raises(PkiError, match="ca.pem already exists"):
        create_ca(ca_dir)

    assert ((ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca.key").read_bytes()) == before


@pytest.mark.parametrize("name", ["../edge1", "edge/1", "1edge", "-edge", ".edge", "edge 1", "", "ca", "e" * 65])
def test_issue_refuses_a_name_that_is_no_router_id_or_safe_file_name(ca_dir: Path, name: str) -> None:
    with pytest.raises(PkiError, match="bad certificate name") as refused:
        issue(ca_dir, name, role="agent")

    assert repr(name) in str(refused.value)


def test_issue_refuses_a_bad_ip_address_naming_it(ca_dir: Path) -> None:
    with pytest.raises(PkiError, match=r"bad IP address '10\.0\.0\.300'"):
        issue(ca_dir, "controller2", role="controller", addresses=["192.0.2.1", "10.0.0.300"])

    assert not (ca_dir / "controller2.pem").exists()


def test_issue_refuses_a_bad_dns_name_naming_it(ca_dir: Path) -> None:
    with pytest.raises(PkiError, match="bad DNS name 'csmm_controller.example'"):
        issue(ca_dir, "controller2", role="controller", dns_names=["csmm_controller.example"])


def test_issue_refuses_addresses_for_an_agent(ca_dir: Path) -> None:
    with pytest.raises(PkiError, match="'edge2'"):
        issue(ca_dir, "edge2", role="agent", addresses=["192.0.2.1"])


def test_issue_without_a_ca_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="ca.pem does not exist"):
        issue(tmp_path, "edge1", role="agent")


# ---------------------------------------------------------------------------------------- certificate contents

def test_ca_certificate_may_sign_leaf_certificates_only(ca_dir: Path) -> None:
    ca = load(ca_dir / "ca.pem")

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.verify_directly_issued_by(ca)


def test_controller_certificate_is_a_server_certificate_for_localhost_and_given_addresses(ca_dir: Path) -> None:
    issue(ca_dir, "controller", role="controller", addresses=["192.0.2.10", "2001:db8::10"],
          dns_names=["csmm.example.net"])
    certificate = load(ca_dir / "controller.pem")

    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "csmm.example.net"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(a)
                                                         for a in ("127.0.0.1", "192.0.2.10", "2001:db8::10")]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    certificate.verify_directly_issued_by(load(ca_dir / "ca.pem"))


def test_agent_certificate_is_a_client_certificate_named_by_the_router_id(ca_dir: Path) -> None:
    certificate = load(ca_dir / "edge1.pem")
    ca = load(ca_dir / "ca.pem")

    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert names.get_values_for_type(x509.DNSName) == ["edge1"]
    assert certificate.subject.rfc4514_string() == "CN=edge1"
    authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    subject_key = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == subject_key.digest
    certificate.verify_directly_issued_by(ca)


def test_leaf_certificate_is_valid_now_and_never_outlives_its_ca(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    create_ca(directory, days=30)

    certificate = load(issue(directory, "edge1", role="agent", days=825).certificate)

    now = datetime.now(UTC)
    assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc <= load(directory / "ca.pem").not_valid_after_utc


def test_issue_refuses_a_ca_key_that_does_not_match_its_certificate(ca_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    create_ca(other)
    (ca_dir / "ca.key").write_bytes((other / "ca.key").read_bytes())

    with pytest.raises(PkiError, match="ca.key is not the key of .*ca.pem"):
        issue(ca_dir, "edge2", role="agent")
