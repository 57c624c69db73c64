"""`csmm-lab`: run a containerlab topology on network namespaces, send traffic through it and
check the QoS customers get against their SLS."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

import click

from controller.store.database import DEFAULT_URL
from emulation.lab import Lab, LabError, find_lab, running_labs
from emulation.topology import TopologyError, load_topology
from emulation.traffic import ScenarioError, TrafficError, load_scenario, run_scenario
from emulation.verify import RunDirectoryError, Sls, analyse, plot

log = logging.getLogger("csmm.lab")


def _root_and_tools() -> None:
    if os.geteuid() != 0:
        raise click.ClickException("csmm-lab needs root (it creates network namespaces, veths and a bridge)")
    missing = [tool for tool in ("ip", "tc", "nft", "iperf3") if shutil.which(tool) is None]
    if missing:
        raise click.ClickException(f"missing tools: {', '.join(missing)} (./scripts/test installs them: "
                                   "apt-get install iproute2 nftables iperf3)")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Run a containerlab topology (*.clab.yml) on Linux network namespaces, where no container
    engine runs: the same file real containerlab deploys. Needs root.

    \b
    csmm-lab up labs/containerlab/gsb.clab.yml      # namespaces clab-gsb-<node>, mgmt bridge 198.18.0.1/24
    csmm-lab status                                   # nodes, management addresses, processes
    csmm-lab exec edge1 -- tc -s class show dev eth1  # a command inside a node
    csmm-lab traffic labs/containerlab/scenarios/congestion.yaml
    csmm-lab verify                                   # offered / received / lost against each SLS; PNG plot
    csmm-lab down                                     # removes everything the lab made, nothing else
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)   # verify opens the controller's database


def _lab(name: str | None) -> Lab:
    try:
        return Lab(find_lab(name))
    except LabError as error:
        raise click.ClickException(str(error)) from None


_LAB_OPTION = click.option("--lab", "lab_name", metavar="NAME", help="Which lab, when several are up.")


@main.command()
@click.argument("topology_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", help="Lab name instead of the file's `name:` (like `containerlab deploy --name`).")
def up(topology_file: Path, name: str | None) -> None:
    """Deploy TOPOLOGY_FILE: a namespace per node, veths per link, the management bridge, each
    node's exec commands, then each node's cmd. A failed `up` removes what it made."""
    _root_and_tools()
    try:
        topology = load_topology(topology_file, name=name)
        lab = Lab.up(topology, topology_file)
    except (TopologyError, LabError) as error:
        raise click.ClickException(str(error)) from None
    _print_status(lab)
    state = lab.state
    click.echo(f"\nlab {state.name} is up; logs in {state.lab_dir}; state in {state.path(state.name)}")
    click.echo(f"agents reach the controller at {state.gateway.split('/')[0]}:50051 (./scripts/serve listens there)")


@main.command()
@_LAB_OPTION
def down(lab_name: str | None) -> None:
    """Stop the lab's processes and delete its namespaces, links and bridge — only what its state
    file names (also what a crashed `up` left behind)."""
    _root_and_tools()
    lab = _lab(lab_name)
    removed = lab.down()
    click.echo(f"lab {lab.state.name} is down: removed {len(removed)} objects")
    for item in removed:
        log.debug("removed %s", item)


@main.command()
@_LAB_OPTION
def status(lab_name: str | None) -> None:
    """Nodes of the lab: namespace, management address, whether its cmd runs."""
    if lab_name is None and not running_labs():
        click.echo("no lab is up")
        return
    _print_status(_lab(lab_name))


def _print_status(lab: Lab) -> None:
    rows = lab.status()
    click.echo(f"{'node':<10} {'namespace':<24} {'mgmt':<15} cmd")
    for row in rows:
        if not row.present:
            running = "namespace missing"
        elif not row.has_cmd:
            running = "-"
        else:
            running = f"running (pid {row.pid})" if row.pid else "NOT RUNNING (see its cmd.log)"
        click.echo(f"{row.node:<10} {row.namespace:<24} {row.mgmt:<15} {running}")


@main.command()
@_LAB_OPTION
@click.argument("node")
def restart(lab_name: str | None, node: str) -> None:
    """Stop NODE's cmd (SIGTERM, then SIGKILL after 3 s) and start it again, as a container
    restart would (e.g. a router's agent)."""
    _root_and_tools()
    lab = _lab(lab_name)
    try:
        pid = lab.restart(node)
    except LabError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"node {node}: cmd restarted (pid {pid})")


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@_LAB_OPTION
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab_name: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE (csmm-lab exec edge1 -- tc -s class show dev eth1); exits with its status."""
    lab = _lab(lab_name)
    try:
        sys.exit(lab.exec(node, list(command)))
    except LabError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@_LAB_OPTION
@click.argument("scenario_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Directory for the iperf3 results (default: <lab dir>/traffic/<scenario>-<time>).")
def traffic(lab_name: str | None, scenario_file: Path, out: Path | None) -> None:
    """Run SCENARIO_FILE's flows with iperf3 (servers on the sink node, clients on the customers'
    nodes) and keep every side's JSON; `csmm-lab verify` reads them."""
    _root_and_tools()
    lab = _lab(lab_name)
    try:
        scenario = load_scenario(scenario_file)
    except ScenarioError as error:
        raise click.ClickException(f"{scenario_file}: {error}") from None
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(lab.state.lab_dir) / "traffic" / f"{scenario.name}-{stamp}"
    click.echo(f"running {scenario.name}: {len(scenario.flows)} flows to {scenario.sink} "
               f"({scenario.sink_address}) for {max(f.end_s for f in scenario.flows):g} s")
    try:
        result = run_scenario(scenario, lab, out)
    except (TrafficError, LabError) as error:
        raise click.ClickException(str(error)) from None
    latest = _latest_file(lab)
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(str(result.run_dir.resolve()))
    click.echo(f"results in {result.run_dir}" + ("" if result.ok else " (some iperf3 runs failed: see there)"))
    if not result.ok:
        sys.exit(1)


def _latest_file(lab: Lab) -> Path:
    """Where the lab remembers its newest traffic run, for `verify` without an argument."""
    return Path(lab.state.lab_dir) / "traffic" / "latest"


@main.command()
@_LAB_OPTION
@click.argument("run_dir", required=False, type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--db", "database_url", envvar="CSMM_DB", default=DEFAULT_URL, show_default=True,
              help="The controller's database, for each customer's SLS. Env: CSMM_DB.")
@click.option("--tolerance", type=click.FloatRange(0.5, 1.0), default=0.97, show_default=True,
              help="Share of its due that a gold or silver customer must receive.")
@click.option("--plot", "png", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the throughput plot (default: RUN_DIR/throughput.png).")
def verify(lab_name: str | None, run_dir: Path | None, database_url: str, tolerance: float, png: Path | None) -> None:
    """Per customer of a traffic run (default: the lab's newest): offered, received and lost
    traffic against its SLS (the one in effect now, from the controller's database), a PNG plot of
    throughput over time, and exit status 1 when a gold or silver customer got less than
    --tolerance of min(offered, SLS)."""
    if run_dir is None:
        latest = _latest_file(_lab(lab_name))
        if not latest.exists():
            raise click.ClickException("this lab has no traffic run yet: csmm-lab traffic SCENARIO_FILE")
        run_dir = Path(latest.read_text().strip())
    try:
        report = analyse(run_dir, current_sls(database_url), tolerance=tolerance)
    except (RunDirectoryError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.table())
    picture = plot(report, png or run_dir / "throughput.png")
    click.echo(f"plot: {picture}")
    sys.exit(0 if report.ok else 1)


def current_sls(database_url: str) -> dict[str, Sls]:
    """Each SLA's SLS in effect, by SLA name, as the domain manager sees them."""
    from controller.config import Settings, open_service
    from controller.domain.principal import DOMAIN_MANAGER

    service = open_service(Settings(database_url=database_url))
    try:
        out = {}
        for sla in service.list_slas(DOMAIN_MANAGER):
            sls = service.get_sls(DOMAIN_MANAGER, sla.id)
            out[sla.name] = Sls(str(sls.service_class), sls.bandwidth_bps)   # type: ignore[arg-type]
        return out
    finally:
        service.database.dispose()
