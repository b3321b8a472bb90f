"""Ingest the sources a project declares, each through its contract and de-identification."""

from __future__ import annotations

from medops.data.contracts import ContractSpec
from medops.data.ingest import NameLookup, TablePlan
from medops.services.projects.project import LoadedProject

# Contract types whose values carry no direct identifier by themselves: kept unless the project says otherwise.
# Text and dates may hold names, ids and dates of service, so each of those needs its own rule.
NUMBER_TYPES = ("int", "float", "bool")


def default_actions(contract: ContractSpec | None) -> dict[str, str]:
    """``keep`` for the columns a contract declares as numbers or booleans; the project lists the rest."""
    if contract is None:
        return {}
    return {column: "keep" for column, spec in contract.columns.items() if spec.type in NUMBER_TYPES}


def table_plan(project: LoadedProject, name: str) -> TablePlan:
    """What ``medops data ingest NAME`` does, as the project file declares it."""
    source = project.source(name)
    deid = project.spec.deidentify
    table = deid.tables[name]
    names = None
    if deid.names is not None and deid.names.source != name and "redact_text" in table.columns.values():
        names = NameLookup(project.source(deid.names.source), deid.names.id, tuple(deid.names.columns))
    contract_file = project.spec.contracts.get(name)
    contract = project.contracts.get(name)
    return TablePlan(
        name=name,
        source=source,
        actions={**default_actions(contract), **table.columns},
        contract=contract,
        contract_file=str(project.resolve(contract_file)) if contract_file else None,
        text_phi=table.text_phi,
        reference_date=deid.reference_date,
        names=names,
        quasi_identifiers=tuple(table.quasi_identifiers),
    )
