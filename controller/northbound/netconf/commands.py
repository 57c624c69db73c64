"""`csmm netconf ...`: SSH logins of the NETCONF server (domain manager only)."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli import Context, _json, pass_context, refusals_to_exit
from controller.northbound.netconf.access import MIN_PASSWORD, NetconfAccess


@click.group("netconf")
def netconf_group() -> None:
    """The NETCONF server's logins. Each acts for one peer domain (or customer) and sees and edits
    only its SLSs, or for the domain manager (no --customer)."""


@netconf_group.command("users")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def users_cmd(obj: Context, as_json: bool) -> None:
    """List NETCONF logins (never their secrets)."""
    users = NetconfAccess(obj.service).users(obj.principal)
    if as_json:
        click.echo(_json([{"name": u.name, "customer": u.customer, "password": u.has_password,
                           "public_keys": len(u.public_keys)} for u in users]))
        return
    for u in users:
        how = ", ".join(filter(None, ["password" if u.has_password else "", f"{len(u.public_keys)} key(s)"
                                      if u.public_keys else ""]))
        click.echo(f"{u.name:<24} {u.customer or '(domain manager)':<24} {how}")


@netconf_group.group("user")
def user_group() -> None:
    """Add or remove a NETCONF login."""


@user_group.command("add")
@click.argument("name")
@click.option("--customer", help="The peer domain (or customer) the login acts for (default: the domain manager).")
@click.option("--password-from-stdin", is_flag=True,
              help=f"Read a password (at least {MIN_PASSWORD} characters) from the first line of standard input.")
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="An SSH public key file (OpenSSH format) that may log in (repeatable).")
@pass_context
@refusals_to_exit
def user_add(obj: Context, name: str, customer: str | None, password_from_stdin: bool,
             public_keys: tuple[Path, ...]) -> None:
    """Create a NETCONF login NAME. Passwords are stored as scrypt hashes only."""
    password = None
    if password_from_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\n")
    keys = tuple(path.read_text() for path in public_keys)
    user = NetconfAccess(obj.service).add_user(obj.principal, name, customer, password, keys)
    click.echo(f"added NETCONF user {user.name} for {user.customer or 'the domain manager'}")


@user_group.command("remove")
@click.argument("name")
@pass_context
@refusals_to_exit
def user_remove(obj: Context, name: str) -> None:
    """Remove NETCONF login NAME (its open sessions stay until they end)."""
    NetconfAccess(obj.service).remove_user(obj.principal, name)
    click.echo(f"removed NETCONF user {name}")
