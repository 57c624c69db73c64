"""`csmm apply`: compare a provisioning file with the database and apply the difference.

Idempotent: applying the same file twice changes nothing the second time and says so. The SLS
given for an SLA is only its starting point; afterwards the SLS belongs to the customer and a
re-apply never reverts it. SLA states only move forward; a file that lags behind the database
(an SLA already deinstalled, say) is reported, not enforced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controller.domain.errors import Conflict
from controller.domain.principal import Principal
from controller.domain.sla import LifecycleState, Sla
from controller.provisioning.model import ProvisioningFile, SlaEntry
from controller.service.layer import Progress, ProvisioningPlan, ServiceLayer, SlaSpec

_ORDER = list(LifecycleState)


@dataclass
class ApplyReport:
    topology_changed: bool = False
    customers_added: int = 0
    customers_changed: int = 0
    slas_created: int = 0
    slas_changed: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.topology_changed, self.customers_added, self.customers_changed,
                    self.slas_created, self.slas_changed))

    def summary(self) -> str:
        if not self.changed:
            return "no changes: the database already matches the file"
        return (f"topology {'replaced' if self.topology_changed else 'unchanged'}; "
                f"customers: {self.customers_added} added, {self.customers_changed} changed; "
                f"SLAs: {self.slas_created} created, {self.slas_changed} changed")


def plan(service: ServiceLayer, principal: Principal, desired: ProvisioningFile) -> tuple[ProvisioningPlan, ApplyReport]:
    """Work out what must change; touch nothing."""
    report = ApplyReport()
    topology = None
    if desired.topology is not None:
        wanted = desired.topology.to_domain()
        if wanted != service.topology(principal):
            topology = wanted
            report.topology_changed = True

    customers = {c.name: c for c in service.list_customers(principal)}
    slas = {s.name: s for s in service.list_slas(principal)}
    new_customers, renamed, new_slas, changed_slas = [], [], [], []
    for entry in desired.customers:
        display = entry.display_name or entry.name
        existing = customers.get(entry.name)
        if existing is None:
            new_customers.append((entry.name, entry.kind, display))
        elif existing.kind != entry.kind:
            raise Conflict(f"customer {entry.name} is a {existing.kind.value}; the file says {entry.kind.value}",
                           field=f"customers[{entry.name}].kind", bound=existing.kind.value, value=entry.kind.value)
        elif existing.display_name != display:
            renamed.append((entry.name, display))
        for sla_entry in entry.slas:
            spec = _spec(entry.name, sla_entry)
            current = slas.get(sla_entry.name)
            if current is None:
                new_slas.append(spec)
                continue
            if current.customer != entry.name:
                raise Conflict(f"SLA {sla_entry.name} belongs to {current.customer}, not {entry.name}",
                               field=f"slas[{sla_entry.name}].customer", bound=current.customer, value=entry.name)
            spec = _keep_state_forward(spec, current, report)
            if current.state == LifecycleState.DEINSTALLED:
                continue  # a finished contract is history; _keep_state_forward has said so
            if service.resolve_terms(spec, current.terms) != current.terms or spec.state != current.state:
                changed_slas.append(spec)
    report.customers_added, report.customers_changed = len(new_customers), len(renamed)
    report.slas_created, report.slas_changed = len(new_slas), len(changed_slas)
    return ProvisioningPlan(topology, new_customers, renamed, new_slas, changed_slas), report


def apply(service: ServiceLayer, principal: Principal, desired: ProvisioningFile,
          progress: Progress | None = None) -> ApplyReport:
    """Apply the file in one transaction; on any refusal nothing is changed."""
    work, report = plan(service, principal, desired)
    if not work.is_empty:
        service.provision(principal, work, progress)
    return report


def _spec(customer: str, entry: SlaEntry) -> SlaSpec:
    return SlaSpec(
        name=entry.name, customer=customer, offering=entry.offering, attachment=entry.attachment(),
        bounds=entry.bounds, change_policy=entry.change_policy, availability=entry.availability,
        valid_from=entry.valid_from, valid_until=entry.valid_until, state=entry.state,
        initial_class=entry.sls.service_class if entry.sls else None,
        initial_bandwidth_bps=entry.sls.bandwidth if entry.sls else None)


def _keep_state_forward(spec: SlaSpec, current: Sla, report: ApplyReport) -> SlaSpec:
    if _ORDER.index(spec.state) < _ORDER.index(current.state):
        report.warnings.append(f"SLA {current.name} is {current.state.value}; the file says {spec.state.value} "
                               f"(states only move forward; left as it is)")
        return replace(spec, state=current.state)
    return spec
