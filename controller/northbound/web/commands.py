"""`csmm api ...`: bearer tokens of the REST API (domain manager only)."""

from __future__ import annotations

import click

from controller.cli import Context, _json, pass_context, refusals_to_exit
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
