"""`medops models`: register versions, sign approvals, move stages and aliases, roll back, read history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medops.atomic import write_atomic_bytes
from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cli_caller,
    console,
    done,
    key_values,
    ok,
    open_workspace,
    print_json,
    read_secret,
    table,
    when,
)
from medops.cli.user import PasswordStdin
from medops.errors import StoreError

if TYPE_CHECKING:
    from medops.caller import Caller
    from medops.services import Services
    from medops.services.registry import RegistryService

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


@contextmanager
def _registry(*, writes: bool) -> Iterator[tuple[RegistryService, Caller]]:
    """The registry service of the workspace, and the CLI's caller (``writes``: the command changes something)."""
    from medops.services import Services

    with open_workspace() as ws:
        yield Services(ws).registry, cli_caller(ws, writes=writes)


def _path(ref: str, *rest: str) -> str:
    """The API path of a model or version (``ref``), and what follows it; each segment escaped."""
    return "/".join(["/v1/models", remote.segment(ref), *(remote.segment(r) for r in rest)])


@app.command("register", epilog="Examples:  medops models register RUN --name readmission")
def register_cmd(
    run: str = typer.Argument(..., help="The finished training run (id or 6+ characters of it)."),
    name: str = typer.Option(..., "--name", "-n", help="The registered model (created with its first version)."),
    description: str = typer.Option("", "--description", help="What this version is."),
    approvals: list[str] = typer.Option(
        [],
        "--approval",
        metavar="ROLE",
        help="A role that must sign besides those the validation policy requires (it can't remove any); repeatable.",
    ),
    evaluation: str | None = typer.Option(
        None,
        "--evaluation",
        metavar="EVAL",
        help="The evaluation to register with (default: the run's newest under the workspace's policy).",
    ),
    tag: list[str] = typer.Option([], "--tag", metavar="KEY=VALUE", help="A tag, fixed with the version; repeatable."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Register a run's model as a new version (data_scientist, ml_engineer or admin).

    The version is bound to one evaluation for good: production is judged on it alone, and
    only if it was made under the workspace's validation policy (the project file's evaluate
    section). The roles that must sign are that policy's.
    """
    tags = {k: v[-1] for k, v in key_values(tag, "--tag", "ticket=CAB-118").items()}
    info = remote.change(
        "POST",
        "/v1/models",
        lambda services, caller: services.registry.register(
            caller,
            run,
            name,
            description=description,
            extra_approvals=approvals,
            evaluation=evaluation,
            reason=reason,
            tags=tags,
        ).to_json(),
        body={
            "run": run,
            "name": name,
            "description": description,
            "extra_approvals": approvals,
            "evaluation": evaluation,
            "tags": tags,
            "reason": reason,
        },
    )
    if as_json:
        print_json(info)
        return
    bound = (
        f"evaluation {info['evaluation'][:12]}" if info["evaluation"] else "no evaluation (it can't reach production)"
    )
    ok(
        f"registered {info['model']}:{info['version']} from run {run} with {bound}; "
        f"approvals required: {', '.join(info['required_approvals'])}"
    )


@app.command("list", epilog="Examples:  medops models list")
def list_cmd(as_json: bool = JsonOption) -> None:
    """Registered models, their version counts and production versions."""
    found = remote.read("/v1/models", lambda services, caller: [m.to_json() for m in services.registry.models(caller)])
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["model", "versions", "production", "created by"],
        [[m["name"], m["versions"], m["production"], m["created_by"]] for m in found],
    )


@app.command("show", epilog="Examples:  medops models show readmission   ·   medops models show readmission:2")
def show_cmd(ref: str = typer.Argument(..., help="NAME or NAME:VERSION."), as_json: bool = JsonOption) -> None:
    """A model's versions (stage, aliases, run, evaluation), or one version with its approvals."""
    detail = remote.read(_path(ref), lambda services, caller: services.registry.show(caller, ref).to_json())
    if as_json:
        print_json(detail)
        return
    # NAME gives the list of versions; NAME:VERSION one version with its decisions
    found, decided = (detail, []) if isinstance(detail, list) else ([detail], detail["approvals"])
    table(
        None,
        ["version", "stage", "aliases", "run", "evaluation", "approvals required", "registered"],
        [
            [
                v["version"],
                v["stage"],
                ", ".join(v["aliases"]),
                (v["run"] or "imported")[:12],
                (v["evaluation"] or "none")[:12],
                ", ".join(v["required_approvals"]),
                f"{when(v['created_at'])} by {v['created_by']}",
            ]
            for v in found
        ],
    )
    if decided:
        _decisions(decided)


@app.command(
    "approve",
    epilog="Examples:  medops models approve readmission:2 --role clinical_reviewer   (logged in as the reviewer)",
)
def approve_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    role: str = typer.Option(..., "--role", help="The required role you sign for (you must hold it)."),
    password_stdin: bool = PasswordStdin,
    as_json: bool = JsonOption,
) -> None:
    """Sign "approved for production" for one required role (your password is checked, Part 11)."""
    decision = _decide(
        ref,
        "signatures",
        password_stdin,
        lambda password: {"password": password, "role": role, "decision": "approve"},
        lambda services, caller, password: services.registry.approve(caller, ref, password, role),
    )
    done(as_json, f"{decision['username']} signed {ref} as {decision['role']}: approved for production", decision)


@app.command("reject", epilog="Examples:  medops models reject readmission:2 --role validator -r 'too few women'")
def reject_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    role: str = typer.Option(..., "--role", help="The required role you decide for."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why: recorded with the signed decision."),
    password_stdin: bool = PasswordStdin,
    as_json: bool = JsonOption,
) -> None:
    """Sign a rejection with its reason; per role the latest decision counts."""
    decision = _decide(
        ref,
        "signatures",
        password_stdin,
        lambda password: {"password": password, "role": role, "decision": "reject", "reason": reason},
        lambda services, caller, password: services.registry.reject(caller, ref, password, role, reason),
    )
    done(as_json, f"{decision['username']} rejected {ref} as {decision['role']}: {reason}", decision)


@app.command(
    "accept-evaluation",
    epilog="Examples:  medops models accept-evaluation readmission:4 -r 'reviewed report R-17'   (as a validator)",
)
def accept_evaluation_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION of an imported version."),
    reason: str = typer.Option(..., "--reason", "-r", help="What you reviewed: recorded with the signed acceptance."),
    password_stdin: bool = PasswordStdin,
    as_json: bool = JsonOption,
) -> None:
    """As a validator, accept the exporting workspace's evaluation of an imported version (signed, Part 11).

    An imported bundle's "passed" counts here only after this acceptance.
    """
    decision = _decide(
        ref,
        "evaluation-acceptance",
        password_stdin,
        lambda password: {"password": password, "reason": reason},
        lambda services, caller, password: services.registry.accept_evaluation(caller, ref, password, reason),
    )
    message = f"{decision['username']} accepted the exporting workspace's evaluation of {ref}"
    done(as_json, message, decision)


def _decide(
    ref: str,
    route: str,
    password_stdin: bool,
    body: Callable[[str], dict[str, Any]],
    sign: Callable[[Services, Caller, str], Any],
) -> Any:
    """A signed decision by the acting user on NAME:VERSION (POST to the version's ``route``, the password in
    the body): the password is asked for every time, and the server checks it again as the workspace does."""
    from medops.services.registry import version_ref

    version_ref(ref)  # a malformed ref is refused before the password is asked for
    user = remote.acting_user()  # an unknown credential is refused before the password is asked for, too
    password = read_secret(None, from_stdin=password_stdin, prompt=f"Password for {user}", confirm=False)
    return remote.change(
        "POST",
        _path(ref, route),
        lambda services, caller: sign(services, caller, password).to_json(),
        body=body(password),
    )


@app.command("approvals", epilog="Examples:  medops models approvals readmission:2")
def approvals_cmd(ref: str = typer.Argument(..., help="NAME:VERSION."), as_json: bool = JsonOption) -> None:
    """Every decision on a version, whether its signature still holds, and what production still lacks."""
    state = remote.read(
        _path(ref, "approvals"), lambda services, caller: services.registry.approvals(caller, ref).to_json()
    )
    if as_json:
        print_json(state)
        return
    decided, lacking = state["decisions"], state["missing"]
    for r in state["requests"]:
        console.print(
            f"requested {when(r['at'])} by {escape(r['by'])} from {', '.join(r['roles']) or '(nobody left)'}"
            + (f": {escape(r['reason'])}" if r["reason"] else "")
        )
    _decisions(decided)
    console.print("complete: every required role signed" if not lacking else "missing: " + "; ".join(lacking))


@app.command("promote", epilog="Examples:  medops models promote readmission:2 --to production -r 'CAB-118'")
def promote_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    to: str = typer.Option(..., "--to", metavar="STAGE", help="staging, production or archived."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Move a version's stage (ml_engineer or admin); production needs passed gates and every signature.

    The previous production version is archived in the same step.
    """
    moves = remote.change(
        "POST",
        _path(ref, "stage"),
        lambda services, caller: [m.to_json() for m in services.registry.promote(caller, ref, to, reason=reason)],
        body={"stage": to, "reason": reason},
    )
    _moves(ref.partition(":")[0], moves, as_json)


@app.command("rollback", epilog="Examples:  medops models rollback readmission -r 'alert INC-42'")
def rollback_cmd(
    name: str = typer.Argument(..., help="The registered model."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Restore the previous production version in one audited step (the current one is archived)."""
    moves = remote.change(
        "POST",
        _path(name, "rollback"),
        lambda services, caller: [m.to_json() for m in services.registry.rollback(caller, name, reason=reason)],
        body={"reason": reason},
    )
    _moves(name, moves, as_json)


@app.command("alias", epilog="Examples:  medops models alias readmission:3 challenger -r 'shadow test'")
def alias_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION, or NAME with --remove."),
    alias: str = typer.Argument(..., help="A free alias: champion, challenger, ..."),
    remove: bool = typer.Option(False, "--remove", help="Remove the alias instead."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Point a free alias at a version (ml_engineer or admin); audited and kept in the history."""
    move = remote.change(
        "DELETE" if remove else "PUT",
        _path(ref, "aliases", alias),
        lambda services, caller: services.registry.set_alias(
            caller, ref, alias, remove=remove, reason=reason
        ).to_json(),
        body=None if remove else {"reason": reason},
        params={"reason": reason} if remove else None,
    )
    name = ref.partition(":")[0]
    now = move["version"] if move["version"] is not None else "removed"
    done(as_json, f"{name}: {alias} -> {now} (was {move['previous'] or 'unset'})", move)


@app.command("history", epilog="Examples:  medops models history readmission --at 2026-11-20T09:00")
def history_cmd(
    name: str = typer.Argument(..., help="The registered model."),
    at: datetime | None = typer.Option(
        None, "--at", help="Which version held each stage and alias at this time (UTC)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Every stage and alias move with who and why; with --at, who held what at that moment."""
    found = remote.read(
        _path(name, "history"),
        lambda services, caller: services.registry.history(caller, name, at=at).to_json(),
        params={"at": at.isoformat()} if at is not None else None,
    )
    if as_json:
        print_json(found)
        return
    held = found["at"]
    if at is not None and held is not None:
        rows = [
            [s, "none" if h is None else h["version"], "" if h is None else f"{when(h['at'])} by {h['by']}"]
            for s, h in held.items()
        ]
        table(f"held at {at.isoformat()}", ["stage or alias", "version", "since"], rows)
        return
    table(
        None,
        ["when", "stage or alias", "version", "previous", "by", "why"],
        [
            [when(m["at"]), m["name"], m["version"], m["previous"], m["actor"], m["reason"] or ""]
            for m in found["moves"]
        ],
    )


@app.command("export", epilog="Examples:  medops models export readmission_30d:2 readmission-2.medops")
def export_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION."),
    file: Path = typer.Argument(..., help="The bundle file to write."),
    as_json: bool = JsonOption,
) -> None:
    """Write a version's signed bundle (verified first) to take to another workspace or a server."""
    from medops.services.registry import version_ref

    version_ref(ref)
    if remote.server_url():  # the server verifies and audits the export; the bytes are checked here again
        path = f"/v1/models/{remote.segment(ref)}"
        info = {k: v for k, v in remote.client().get(path).items() if k != "approvals"}
        digest, data = remote.fetch_checked(f"{path}/bundle")
        if digest != info["artifact_sha256"]:
            raise StoreError(f"the server sent another bundle than {ref}'s: nothing was written")
        write_atomic_bytes(file.expanduser(), data)
    else:
        with _registry(writes=True) as (registry, caller):
            info = remote.wire(registry.export(caller, ref, file.expanduser()).to_json())
    message = f"wrote {file} ({info['model']}:{info['version']}, bundle sha256:{info['artifact_sha256'][:12]})"
    done(as_json, message, {**info, "file": str(file)})


@app.command("import", epilog="Examples:  medops models import readmission-2.medops --name readmission_30d")
def import_cmd(
    file: Path = typer.Argument(..., help="A bundle file exported by a workspace whose key this one trusts."),
    name: str | None = typer.Option(None, "--name", help="Register it under this name (default: its own)."),
    approvals: list[str] = typer.Option(
        [],
        "--approval",
        metavar="ROLE",
        help="A role that must sign besides those this workspace's policy requires; repeatable.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Verify a bundle (trusted signature, every checksum, safe members) and register it as a new version.

    Production then needs a validator here to accept the exporter's evaluation
    (medops models accept-evaluation) and the signatures this workspace's policy requires.
    """
    with _registry(writes=True) as (registry, caller):
        info = registry.import_bundle(caller, file.expanduser(), name=name, extra_approvals=approvals)
    if as_json:
        print_json(info.to_json())
        return
    ok(f"imported {file} as {info.ref}; approvals required: {', '.join(info.required_approvals) or 'none'}")


@app.command("public-key", epilog="Examples:  medops models public-key > site-a.pub")
def public_key_cmd(as_json: bool = JsonOption) -> None:
    """This workspace's public key: give it to the workspaces that will import its bundles."""
    with _registry(writes=False) as (registry, caller):
        key = registry.public_key(caller)
    if as_json:
        print_json({"public_key": key})
    else:
        console.print(key)


@app.command("trust-key", epilog="Examples:  medops models trust-key \"$(cat site-a.pub)\" --note 'Site A research'")
def trust_key_cmd(
    key: str = typer.Argument(..., help="Another workspace's public key (medops models public-key there)."),
    note: str = typer.Option(..., "--note", help="Whose key it is: recorded and audited."),
    as_json: bool = JsonOption,
) -> None:
    """Accept bundles signed by another workspace (admin only)."""
    with _registry(writes=True) as (registry, caller):
        kid = registry.trust_key(caller, key, note=note)
    done(as_json, f"bundles signed by key {kid} are now accepted here", {"key_id": kid, "note": note})


@app.command(
    "distrust-key", epilog="Examples:  medops models distrust-key 3f2a9c0d1e4b5a69 --reason 'Site A key compromised'"
)
def distrust_key_cmd(
    key_id: str = typer.Argument(..., help="The key's id, as `medops models trusted-keys` lists it."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is no longer trusted: recorded and audited."),
    as_json: bool = JsonOption,
) -> None:
    """Stop accepting bundles signed by another workspace's key (admin only); versions imported stay."""
    with _registry(writes=True) as (registry, caller):
        registry.distrust_key(caller, key_id, reason=reason)
    done(as_json, f"bundles signed by key {key_id} are no longer accepted here", {"key_id": key_id, "trusted": False})


@app.command("trusted-keys", epilog="Examples:  medops models trusted-keys --json")
def trusted_keys_cmd(as_json: bool = JsonOption) -> None:
    """The other workspaces' keys this one accepts bundles from (its signed keyring)."""
    with _registry(writes=False) as (registry, caller):
        keys = registry.trusted_keys(caller)
    if as_json:
        print_json(keys)
        return
    table(
        "trusted bundle keys",
        ["key", "note", "trusted by", "at"],
        [[k["key_id"], k["note"], k["trusted_by"], k["trusted_at"]] for k in keys],
    )


def _moves(name: str, moves: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(moves)
        return
    for m in moves:
        ok(f"{name}:{m['version']} -> {m['name']}")


def _decisions(decided: list[dict[str, Any]]) -> None:
    table(
        "approvals",
        ["role", "signer", "decision", "signature", "when", "reason"],
        [
            [
                d["role"],
                d["username"],
                d["decision"],
                "valid" if d["valid"] else "VOID",
                when(d["at"]),
                d["reason"] or "",
            ]
            for d in decided
        ],
    )
