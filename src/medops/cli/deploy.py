"""`medops deploy`: a container recipe and Kubernetes manifests for one registered model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, cli_caller, done, err_console, open_workspace, path_arg

EPILOG = (
    "Examples:  medops deploy docker readmission_30d --out build/readmission   ·   "
    "medops deploy kubernetes readmission_30d@champion --out deploy/ --namespace clinical-ml   ·   "
    "medops deploy docker readmission_30d:3 --out build/r3 --wheel dist/medops-0.1.0-py3-none-any.whl --json   ·   "
    "medops deploy server --out deploy/platform --namespace clinical-ml"
)


def deploy(
    target: str = typer.Argument(
        ...,
        metavar="TARGET",
        help="docker, kubernetes (the Dockerfile plus manifests), or server (the platform server's, no MODEL).",
    ),
    ref: str | None = typer.Argument(
        None, metavar="MODEL", help="NAME (its production version), NAME@ALIAS or NAME:VERSION."
    ),
    out: Path = typer.Option(..., "--out", "-o", callback=path_arg, help="A new or empty folder to write into."),
    force: bool = typer.Option(
        False, "--force", help="Write into a folder that is not empty (its files of the same names are replaced)."
    ),
    image: str | None = typer.Option(
        None, "--image", help="The image the manifests run (default medops-NAME:VERSION)."
    ),
    namespace: str = typer.Option("default", "--namespace", help="The Kubernetes namespace of the manifests."),
    replicas: int = typer.Option(2, "--replicas", help="Minimum replicas (the autoscaler may add up to 10)."),
    wheel: Path | None = typer.Option(
        None, "--wheel", help="medops's own wheel, copied into wheels/ for the image to install medops from."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write a Dockerfile with the model's verified bundle baked in, and for kubernetes its manifests.

    The bundle is verified before it is copied, while the image is built and at every container
    start. The image runs as a non-root user on a read-only root filesystem. Audited as model.deploy
    (ml_engineer or admin).
    """
    from medops.errors import InvalidInput
    from medops.services import Services

    if target == "server":
        if ref is not None:
            raise InvalidInput("medops deploy server takes no MODEL: the platform server serves the whole workspace")
        with open_workspace() as ws:
            made = Services(ws).deploy.server(
                cli_caller(ws, writes=True),
                out,
                force=force,
                image=image,
                namespace=namespace,
                replicas=replicas,
                wheel=wheel.expanduser() if wheel else None,
            )
        if not as_json:
            for warning in made.warnings:
                err_console.print(f"[yellow]warning:[/] {escape(warning)}")
        message = f"wrote {len(made.files)} files for the platform server to {made.out}"
        message += f"; build with: docker build -t {made.image} {made.out}"
        done(as_json, message, made.to_json())
        return
    if ref is None:
        raise InvalidInput(f"medops deploy {target} needs the MODEL to serve", hint="for example readmission_30d")
    with open_workspace() as ws:
        result = Services(ws).deploy.deploy(
            cli_caller(ws, writes=True),
            target,
            ref,
            out,
            force=force,
            image=image,
            namespace=namespace,
            replicas=replicas,
            wheel=wheel.expanduser() if wheel else None,
        )
    message = (
        f"wrote {len(result.files)} files for {result.model}:{result.version} ({target}) to {result.out}; "
        f"build with: docker build -t {result.image} {result.out}"
    )
    done(as_json, message, result.to_json())
