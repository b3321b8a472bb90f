"""Ingest the sources a project declares, each through its contract and de-identification."""

from __future__ import annotations

from medops.data.ingest import NameLookup, TablePlan
from medops.pipelines.project import LoadedProject


def table_plan(project: LoadedProject, name: str) -> TablePlan:
    """What ``medops data ingest NAME`` does, as the project file declares it."""
    source = project.source(name)
    deid = project.spec.deidentify
    table = deid.tables[name]
    names = None
    if deid.names is not None and deid.names.source != name and "redact_text" in table.columns.values():
        names = NameLookup(project.source(deid.names.source), deid.names.id, tuple(deid.names.columns))
    contract_file = project.spec.contracts.get(name)
    return TablePlan(
        name=name,
        source=source,
        actions=dict(table.columns),
        contract=project.contracts.get(name),
        contract_file=str(project.resolve(contract_file)) if contract_file else None,
        text_phi=table.text_phi,
        reference_date=deid.reference_date,
        names=names,
        quasi_identifiers=tuple(table.quasi_identifiers),
    )
