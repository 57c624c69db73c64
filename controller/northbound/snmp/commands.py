"""`csmm snmp ...`: SNMPv3 users, notification targets and the agent's engine ID (domain manager only)."""

from __future__ import annotations

import secrets

import click

from controller.cli import Context, _json, pass_context, refusals_to_exit
from controller.northbound.snmp.access import AUTH_PROTOCOLS, DEFAULT_AUTH, DEFAULT_PRIV, PRIV_PROTOCOLS, SnmpAccess


def generated_passphrase() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def add_user(obj: Context, name: str, customer: str | None, auth: str, priv: str, auth_passphrase: str | None,
             priv_passphrase: str | None) -> None:
    """Create the user; print passphrases only if we made them (the one time they can be seen)."""
    made = auth_passphrase is None
    auth_passphrase = auth_passphrase or generated_passphrase()
    priv_passphrase = priv_passphrase or generated_passphrase()
    user = SnmpAccess(obj.service).add_user(obj.principal, name, customer, auth_passphrase, priv_passphrase, auth, priv)
    click.echo(f"added SNMP user {user.name} for {user.customer or 'the domain manager'} ({auth}, {priv}, authPriv)")
    if made:
        click.echo("passphrases (shown once; only derived keys are stored):")
        click.echo(f"  auth: {auth_passphrase}")
        click.echo(f"  priv: {priv_passphrase}")


@click.group("snmp")
def snmp_group() -> None:
    """The SNMP agent's users, notification targets and engine ID.

    Each SNMPv3 user acts for one customer (or peer domain) and sees only its SLAs, or for the
    domain manager (no --customer). Only authPriv is accepted."""


@snmp_group.command("users")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def users_cmd(obj: Context, as_json: bool) -> None:
    """List SNMP users (names and protocols; keys are never shown)."""
    users = SnmpAccess(obj.service).users(obj.principal)
    if as_json:
        click.echo(_json([{"name": u.name, "customer": u.customer, "auth": u.auth_protocol, "priv": u.priv_protocol}
                          for u in users]))
        return
    for u in users:
        click.echo(f"{u.name:<24} {u.customer or '(domain manager)':<24} {u.auth_protocol:<8} {u.priv_protocol}")


@snmp_group.group("user")
def user_group() -> None:
    """Add or remove an SNMP user."""


@user_group.command("add")
@click.argument("name")
@click.option("--customer", help="The customer or peer domain the user acts for (default: the domain manager).")
@click.option("--auth", type=click.Choice(list(AUTH_PROTOCOLS)), default=DEFAULT_AUTH, show_default=True,
              help="Authentication protocol.")
@click.option("--priv", type=click.Choice(list(PRIV_PROTOCOLS)), default=DEFAULT_PRIV, show_default=True,
              help="Privacy protocol (AES: AES-128, RFC 3826).")
@click.option("--passphrases-from-stdin", is_flag=True,
              help="Read the auth and the priv passphrase, one per line, from standard input (at least 8 "
                   "characters each). Without it, passphrases are generated and printed once.")
@pass_context
@refusals_to_exit
def user_add(obj: Context, name: str, customer: str | None, auth: str, priv: str, passphrases_from_stdin: bool) -> None:
    """Create an SNMPv3 user NAME (authPriv). Only keys derived from the passphrases are stored."""
    auth_passphrase = priv_passphrase = None
    if passphrases_from_stdin:
        lines = click.get_text_stream("stdin").read().splitlines()
        if len(lines) < 2:
            raise click.UsageError("--passphrases-from-stdin needs two lines: the auth and the priv passphrase")
        auth_passphrase, priv_passphrase = lines[0], lines[1]
    add_user(obj, name, customer, auth, priv, auth_passphrase, priv_passphrase)


@user_group.command("remove")
@click.argument("name")
@pass_context
@refusals_to_exit
def user_remove(obj: Context, name: str) -> None:
    """Remove SNMP user NAME (a running agent stops accepting it within a second)."""
    SnmpAccess(obj.service).remove_user(obj.principal, name)
    click.echo(f"removed SNMP user {name}")


@snmp_group.command("targets")
@pass_context
@refusals_to_exit
def targets_cmd(obj: Context) -> None:
    """List notification targets."""
    for t in SnmpAccess(obj.service).targets(obj.principal):
        click.echo(f"{t.name:<20} {t.address}:{t.port:<6} as {t.user:<20} {t.customer or '(every SLA)'}")


@snmp_group.group("target")
def target_group() -> None:
    """Add or remove a notification target (an SNMPv3 trap receiver)."""


@target_group.command("add")
@click.argument("name")
@click.option("--address", required=True, help="IP address of the trap receiver.")
@click.option("--port", type=int, default=162, show_default=True)
@click.option("--user", required=True, help="SNMP user the traps are sent as (authPriv); it must act for --customer.")
@click.option("--customer", help="Send only this customer's notifications (default: every SLA's, for the operator).")
@pass_context
@refusals_to_exit
def target_add(obj: Context, name: str, address: str, port: int, user: str, customer: str | None) -> None:
    """Send csmSlsChanged (and, with feedback, csmSlaViolation/Cleared) traps to a receiver."""
    t = SnmpAccess(obj.service).add_target(obj.principal, name, customer, address, port, user)
    click.echo(f"added target {t.name}: {t.address}:{t.port} as {t.user} for {t.customer or 'every SLA'}")


@target_group.command("remove")
@click.argument("name")
@pass_context
@refusals_to_exit
def target_remove(obj: Context, name: str) -> None:
    SnmpAccess(obj.service).remove_target(obj.principal, name)
    click.echo(f"removed target {name}")


@snmp_group.command("engine")
@pass_context
@refusals_to_exit
def engine_cmd(obj: Context) -> None:
    """The agent's snmpEngineID and snmpEngineBoots (a trap receiver needs the engine ID)."""
    state = SnmpAccess(obj.service).engine(obj.principal)
    if state is None:
        click.echo("no engine ID yet: it is made when `csmm serve` first starts the SNMP agent")
        return
    engine_id, boots = state
    click.echo(f"engine ID 0x{engine_id.hex()}, boots {boots}")
