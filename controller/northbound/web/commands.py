"""`csmm api ...`: the REST API's bearer tokens; `csmm web ...`: people's logins to the portal (domain manager)."""

from __future__ import annotations

import click

from controller.cli import Context, _json, pass_context, refusals_to_exit
from controller.northbound.web.accounts import MIN_PASSWORD, WebAccounts
from controller.northbound.web.tokens import ApiTokens


@click.group("api")
def api_group() -> None:
    """The REST API's bearer tokens. Each acts for one customer (or peer domain) and reaches only
    its SLAs and invoices, or for the domain manager (no --customer). The API is served by
    `csmm serve` under http://HOST:PORT/api/v1 (its OpenAPI document: /api/v1/openapi.json)."""


@api_group.command("tokens")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def api_tokens(obj: Context, as_json: bool) -> None:
    """The tokens by name and who they act for (the tokens themselves are not kept)."""
    found = ApiTokens(obj.service).list(obj.principal)
    if as_json:
        click.echo(_json(found))
        return
    for token in found:
        click.echo(f"{token.name:<24} {token.customer or '(domain manager)'}")


@api_group.group("token")
def api_token() -> None:
    """Make or remove a token."""


@api_token.command("add")
@click.argument("name")
@click.option("--customer", help="The customer or peer domain it acts for; omit for the domain manager.")
@pass_context
@refusals_to_exit
def api_token_add(obj: Context, name: str, customer: str | None) -> None:
    """Make a token and print it, once (only its SHA-256 is stored)."""
    token = ApiTokens(obj.service).add(obj.principal, name, customer)
    click.echo(f"added API token {name} for {customer or 'the domain manager'}; shown once:")
    click.echo(token)


@api_token.command("remove")
@click.argument("name")
@pass_context
@refusals_to_exit
def api_token_remove(obj: Context, name: str) -> None:
    """Remove a token; requests with it are refused at once."""
    ApiTokens(obj.service).remove(obj.principal, name)
    click.echo(f"removed API token {name}")


@click.group("web")
def web_group() -> None:
    """People's logins to the web portal served by `csmm serve` (http://HOST:PORT/). A customer's
    login sees the customer portal (its SLAs, SLS changes, conformance, usage, invoices); a login
    without --customer sees the domain manager's console."""


@web_group.command("users")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@refusals_to_exit
def web_users(obj: Context, as_json: bool) -> None:
    """The logins by name and who they act for (passwords are kept only as Argon2id hashes)."""
    found = WebAccounts(obj.service).list(obj.principal)
    if as_json:
        click.echo(_json(found))
        return
    for user in found:
        click.echo(f"{user.name:<24} {user.customer or '(domain manager)'}")


@web_group.group("user")
def web_user() -> None:
    """Make or remove a login."""


@web_user.command("add")
@click.argument("name")
@click.option("--customer", help="The customer or peer domain it acts for; omit for the domain manager.")
@click.option("--password-from-stdin", is_flag=True,
              help=f"Read the password (at least {MIN_PASSWORD} characters) from the first line of standard input "
                   "instead of asking for it.")
@pass_context
@refusals_to_exit
def web_user_add(obj: Context, name: str, customer: str | None, password_from_stdin: bool) -> None:
    """Make a login NAME with a password (stored as an Argon2id hash only)."""
    if password_from_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    WebAccounts(obj.service).add(obj.principal, name, password, customer)
    click.echo(f"added web login {name} for {customer or 'the domain manager'}")


@web_user.command("remove")
@click.argument("name")
@pass_context
@refusals_to_exit
def web_user_remove(obj: Context, name: str) -> None:
    """Remove a login; its sessions end at once."""
    WebAccounts(obj.service).remove(obj.principal, name)
    click.echo(f"removed web login {name}")
