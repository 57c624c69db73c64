"""A lab certificate authority for the agents' mTLS channel, and the gRPC credentials built from its
files.

`csmm ca init DIR` makes a CA (DIR/ca.pem, DIR/ca.key); `csmm ca issue DIR NAME --role ...` signs
one certificate: the controller's server certificate (serverAuth, valid for localhost, 127.0.0.1 and
the addresses given) or a router agent's client certificate (clientAuth, named by the router id).
A production CA can replace this one: the controller only needs the same roles and names.

Keys are ECDSA P-256 and signatures SHA-256: what every TLS stack, gRPC's BoringSSL included,
accepts. Private keys are written unencrypted and readable by their owner only (mode 0600), so the
controller and the agents can start unattended.

The controller tells which router is calling from the client certificate (`peer_identity`); the
agent service refuses a Hello for another router id (controller.southbound.server).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERTIFICATE = "ca.pem"
CA_KEY = "ca.key"
CONTROLLER_NAMES = ("localhost",)
CONTROLLER_ADDRESSES = ("127.0.0.1",)
# Router ids double as file names (NAME.pem): no path separators, no leading dot or dash.
# 64 characters is the X.509 upper bound of a common name (RFC 5280, ub-common-name).
SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
BACKDATE = timedelta(minutes=5)   # a router whose clock is a little behind still accepts a fresh certificate

Role = Literal["controller", "agent"]
ROLE_USAGE = {"controller": ExtendedKeyUsageOID.SERVER_AUTH, "agent": ExtendedKeyUsageOID.CLIENT_AUTH}


class PkiError(RuntimeError):
    """A CA operation refused or failed; the message names the file or the value to fix."""


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path


# ---------------------------------------------------------------------------------------- issuing

def create_ca(directory: Path, *, common_name: str = "CSMM lab CA", days: int = 3650) -> Issued:
    """Create a self-signed CA in `directory` (created with mode 0700 if missing).

    Raises:
        PkiError: a CA already exists there (it is never overwritten: every certificate it signed
            would stop working), or an argument is out of range.
    """
    _check_days(days)
    if not common_name.strip():
        raise PkiError("the CA's common name is empty")
    issued = Issued(directory / CA_CERTIFICATE, directory / CA_KEY)
    for path in (issued.certificate, issued.key):
        if path.exists():
            raise PkiError(f"{path} already exists: refusing to overwrite a CA "
                           "(certificates it signed would stop working); use another directory")
    _make_private_directory(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before = _now() - BACKDATE
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        # path_length=0: the lab CA signs leaf certificates only, never another CA
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(issued.key, key, exclusive=True)
    _write_certificate(issued.certificate, certificate, exclusive=True)
    return issued


def issue(directory: Path, name: str, *, role: Role, addresses: Sequence[str] = (),
          dns_names: Sequence[str] = (), days: int = 825) -> Issued:
    """Sign a certificate for `name` with the CA in `directory`; write directory/NAME.pem and
    NAME.key (mode 0600).

    An existing NAME.pem/NAME.key is replaced: that is how a certificate is renewed or a leaked
    key is retired (the old certificate stays valid until it expires; the lab CA keeps no CRL).

    Args:
        name: the common name; for an agent, its router id (also its DNS subject alternative name).
        role: "controller" (serverAuth; valid for localhost, 127.0.0.1, `addresses`, `dns_names`)
            or "agent" (clientAuth).
        addresses: more IP addresses the agents reach the controller at (controller only).
        dns_names: more DNS names of the controller (controller only).
        days: validity, capped at the CA's own expiry (825 days: the CA/Browser Forum's former
            limit for server certificates, a common default of lab tools).

    Raises:
        PkiError: a bad name, role, address or DNS name (the message names it), or a missing or
            unreadable CA.
    """
    _check_name(name)
    _check_days(days)
    if role not in ROLE_USAGE:
        raise PkiError(f"unknown role {role!r}: expected 'controller' or 'agent'")
    if role == "agent" and (addresses or dns_names):
        raise PkiError(f"an agent certificate is named by its router id only ({name!r}); "
                       "extra addresses and DNS names are for the controller's certificate")
    alternative_names = (_controller_names(addresses, dns_names) if role == "controller"
                         else [x509.DNSName(name)])
    ca_certificate, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    not_before = _now() - BACKDATE
    # a certificate that outlives its CA would fail verification from that day on anyway
    not_after = min(not_before + timedelta(days=days), ca_certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ROLE_USAGE[role]]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca_certificate, ca_key), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    issued = Issued(directory / f"{name}.pem", directory / f"{name}.key")
    _write_key(issued.key, key, exclusive=False)
    _write_certificate(issued.certificate, certificate, exclusive=False)
    return issued


def _check_name(name: str) -> None:
    if not SAFE_NAME.fullmatch(name):
        raise PkiError(f"bad certificate name {name!r}: use 1-64 letters, digits, '-', '_' or '.', "
                       "starting with a letter (it is the router id and the file name)")
    if name.lower() == CA_CERTIFICATE.removesuffix(".pem"):
        raise PkiError(f"bad certificate name {name!r}: ca.pem and ca.key are the CA's own files")


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"days must be at least 1, not {days}")


def _controller_names(addresses: Sequence[str], dns_names: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for dns_name in (*CONTROLLER_NAMES, *dns_names):
        if not all(DNS_LABEL.fullmatch(label) for label in dns_name.split(".")) or len(dns_name) > 253:
            raise PkiError(f"bad DNS name {dns_name!r}: expected labels of letters, digits and '-' joined by '.'")
        names.append(x509.DNSName(dns_name.lower()))
    for address in (*CONTROLLER_ADDRESSES, *addresses):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            raise PkiError(f"bad IP address {address!r}: expected an IPv4 or IPv6 address") from None
    return list(dict.fromkeys(names))     # an operator repeating localhost must not duplicate it


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)


def _authority_key_identifier(ca_certificate: x509.Certificate,
                              ca_key: ec.EllipticCurvePrivateKey) -> x509.AuthorityKeyIdentifier:
    # reuse the CA's own identifier when it has one: a CA made elsewhere may compute it differently
    try:
        ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    certificate_path, key_path = directory / CA_CERTIFICATE, directory / CA_KEY
    try:
        certificate = x509.load_pem_x509_certificate(_read(certificate_path))
    except ValueError as error:
        raise PkiError(f"{certificate_path} is not a PEM certificate: {error}") from None
    try:
        key = serialization.load_pem_private_key(_read(key_path), password=None)
    except (ValueError, TypeError) as error:
        raise PkiError(f"{key_path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an ECDSA key (csmm ca init makes P-256 keys)")
    if key.public_key() != certificate.public_key():
        raise PkiError(f"{key_path} is not the key of {certificate_path}")
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:     # TLS stacks reject whatever a non-CA certificate signs
        raise PkiError(f"{certificate_path} is not a CA certificate (no BasicConstraints CA:TRUE)")
    return certificate, key


# ---------------------------------------------------------------------------------------- files

def _now() -> datetime:
    return datetime.now(UTC)


def _make_private_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(parents=True)
    directory.chmod(0o700)      # explicitly: mkdir's mode is reduced by the umask, never widened


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path} does not exist") from None
    except OSError as error:
        raise PkiError(f"cannot read {path}: {error.strerror}") from None


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, exclusive: bool) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    _write(path, data, 0o600, exclusive=exclusive)


def _write_certificate(path: Path, certificate: x509.Certificate, *, exclusive: bool) -> None:
    _write(path, certificate.public_bytes(serialization.Encoding.PEM), 0o644, exclusive=exclusive)


def _write(path: Path, data: bytes, mode: int, *, exclusive: bool) -> None:
    """Write `path` with `mode` from the first byte on (never a moment with a wider mode).

    exclusive: fail if `path` exists (the CA). Otherwise the data goes to a temporary file renamed
    into place, so a reader never sees half a certificate being re-issued.
    """
    target = path if exclusive else path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        descriptor = os.open(target, flags, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)    # a leftover temporary file may have had another mode
            file.write(data)
        if not exclusive:
            os.replace(target, path)
    except FileExistsError:
        raise PkiError(f"{path} already exists") from None
    except OSError as error:
        raise PkiError(f"cannot write {path}: {error.strerror}") from None


# ---------------------------------------------------------------------------------------- gRPC

def peer_identity(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The router id a client certificate speaks for, from `ServicerContext.auth_context()`.

    gRPC fills, for a TLS peer that presented a certificate, `transport_security_type` [b"ssl"],
    `x509_common_name` [CN], `x509_subject_alternative_name` (all SANs), `peer_dns` (the DNS
    SANs), `x509_pem_cert` and more; for a plaintext peer only `transport_security_type`
    [b"insecure"] or nothing at all.

    The identity is the common name: csmm issues agent certificates with CN = router id, and a
    production CA can do the same whatever else it puts in the SANs. A certificate without a CN
    is named by its DNS SAN if it has exactly one.

    Returns:
        The identity, or None for a plaintext connection or a certificate without a usable name.
    """
    if list(auth_context.get("transport_security_type", ())) != [b"ssl"]:
        return None
    common_names = auth_context.get("x509_common_name", ())
    dns_names = auth_context.get("peer_dns", ())
    if len(common_names) == 1:
        return common_names[0].decode()
    if not common_names and len(dns_names) == 1:
        return dns_names[0].decode()
    return None


def server_credentials(directory: Path, name: str) -> grpc.ServerCredentials:
    """The controller's mTLS credentials: its certificate directory/NAME.pem (key NAME.key), and
    only clients with a certificate signed by directory/ca.pem are let in."""
    _check_name(name)
    ca = _read(directory / CA_CERTIFICATE)
    pair = (_read(directory / f"{name}.key"), _read(directory / f"{name}.pem"))
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=True)


def channel_credentials(ca: Path, certificate: Path, key: Path) -> grpc.ChannelCredentials:
    """An agent's mTLS credentials: trust the controller's certificate if `ca` signed it, and
    present `certificate` (private key `key`)."""
    return grpc.ssl_channel_credentials(root_certificates=_read(ca), private_key=_read(key),
                                        certificate_chain=_read(certificate))
