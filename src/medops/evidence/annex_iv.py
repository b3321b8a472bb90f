"""The technical documentation of the EU AI Act (Regulation (EU) 2024/1689, Annex IV), filled from a
model version's evidence where medops holds the record, and marked "to be supplied" where it does not.

The headings are paraphrased, in the Annex's order. A filled section says where its content comes
from, so a notified body can follow it back to the record; a section medops can't fill (the
declaration of conformity, the harmonised standards, the risk management system) says so instead
of inventing text. This is a draft for the provider to complete, not a conformity assessment.
"""

from __future__ import annotations

from typing import Any

TO_BE_SUPPLIED = "to be supplied"


def annex_iv(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per heading: its number, title, and either ``content`` (with ``from``) or the status
    ``to be supplied`` with what the provider must add."""
    project = doc.get("project") or {}
    version = doc.get("version") or {}
    evaluation = doc.get("evaluation") or {}
    training = doc.get("training") or {}
    data = doc.get("data") or {}
    approvals = doc.get("approvals") or {}
    production = doc.get("production") or {}
    changes = doc.get("changes")
    card = evaluation.get("card") or {}

    def filled(number: str, title: str, content: Any, source: str) -> dict[str, Any]:
        if content in (None, "", [], {}):
            return missing(number, title, f"medops holds no record of it ({source} is empty)")
        return {"section": number, "title": title, "status": "filled", "content": content, "from": source}

    def missing(number: str, title: str, needs: str) -> dict[str, Any]:
        return {"section": number, "title": title, "status": TO_BE_SUPPLIED, "needs": needs}

    gates = evaluation.get("gates") or []
    return [
        filled(
            "1(a)",
            "Intended purpose, provider, version",
            {
                "intended_use": project.get("intended_use"),
                "population": project.get("population"),
                "model": f"{version.get('model')}:{version.get('version')}",
                "bundle_sha256": version.get("artifact_sha256"),
            }
            if project.get("intended_use")
            else None,
            "the reviewed project file and the registry",
        ),
        missing("1(b)", "Interaction with other hardware and software", "the systems the model is deployed into"),
        filled(
            "1(c)",
            "Versions of the relevant software",
            {
                "medops": doc.get("medops"),
                "environment_sha256": training.get("environment_sha256"),
                "code": training.get("code"),
            }
            if training
            else None,  # fmt: skip
            "the training run's code and environment fingerprint",
        ),
        missing("1(d)-(f)", "Forms placed on the market, hardware, product illustrations", "the product's packaging"),
        missing("1(g)", "User interface for the deployer", "the clinical application that shows the score"),
        filled("1(h)", "Instructions for use", card.get("intended_use") or card or None, "the model card"),
        filled(
            "2(a)",
            "Methods and steps of development",
            {
                "experiment": training.get("experiment"),
                "params": training.get("params"),
                "seed": training.get("seed"),
                "trained_by": training.get("by"),
                "started_at": training.get("started_at"),
            }
            if training
            else None,  # fmt: skip
            "the training run",
        ),
        filled(
            "2(b)",
            "Design choices: what the system optimises for, the decision threshold",
            {"threshold": evaluation.get("threshold"), "features": (training.get("params") or {}).get("features")}
            if evaluation
            else None,
            "the evaluation's threshold choice and the run's parameters",
        ),
        missing("2(c)", "System architecture and computational resources", "where and how the model is served"),
        filled(
            "2(d)",
            "Data: provenance, scope, selection, labelling, cleaning",
            {
                "source_files": data.get("source_files"),
                "datasets": [
                    {k: d.get(k) for k in ("name", "version", "rows", "contract", "deid")}
                    for d in data.get("datasets") or []
                ],
            }
            if data.get("datasets")
            else None,
            "the lineage graph, the data contracts and the de-identification reports",
        ),
        filled(
            "2(e)",
            "Human oversight measures",
            {"required_signatures": version.get("required_approvals"), "decisions": approvals.get("decisions")},
            "the registry's approvals, each signature verified",
        ),
        missing("2(f)", "Pre-determined changes", "the change control plan for retraining, if any"),
        filled(
            "2(g)",
            "Validation and testing: metrics, robustness, discriminatory impact, signed test reports",
            {
                "metrics": evaluation.get("metrics"),
                "gates": gates,
                "subgroups": evaluation.get("subgroups"),
                "robustness": evaluation.get("robustness"),
                "report_sha256": evaluation.get("document_sha256"),
            }
            if evaluation
            else None,  # fmt: skip
            "the governing evaluation and its report",
        ),
        missing("2(h)", "Cybersecurity measures", "the deployment's controls (medops signs and checksums bundles)"),
        filled(
            "3",
            "Capabilities and limitations in performance, for the groups it is used on",
            {
                "subgroups": evaluation.get("subgroups"),
                "input_checks": evaluation.get("input_checks"),
                "serving_ranges": evaluation.get("serving"),
            }
            if evaluation
            else None,  # fmt: skip
            "the subgroup analysis and the serving ranges",
        ),
        filled(
            "4",
            "Appropriateness of the performance metrics",
            [{"criterion": g.get("criterion"), "why": g.get("why")} for g in gates],
            "the policy's gates and their reasons",
        ),
        missing("5", "Risk management system (Article 9)", "the provider's risk management file"),
        filled("6", "Changes through the lifecycle", changes, "the difference from the previous production version"),
        missing("7", "Harmonised standards applied", "the standards the provider applies"),
        missing("8", "EU declaration of conformity", "the signed declaration"),
        filled(
            "9",
            "Post-market monitoring",
            {"windows": len(production.get("windows") or []), "alerts": production.get("alerts")}
            if production.get("windows")
            else None,
            "the monitored windows and the alerts with their handling",
        ),
    ]
