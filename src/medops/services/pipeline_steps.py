"""The steps a project file makes, and what each one does, reads and makes.

The DAG is derived from the file, never listed by hand: one ingest step per source; a
features step when views are declared (after the ingests of their sources); a training-set
step when training reads views (after features and the labels' ingest); train, evaluate and
register when those sections exist. Each step's inputs are read from the workspace as they
are now (the dataset versions a step would read, the run a step would evaluate), so a change
made outside the pipeline (a manual ingest, a new training) is seen like one made inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from medops.caller import Caller
from medops.data.datasets import get as get_dataset
from medops.errors import ConfigError, InvalidInput, MedopsError, NotFound, PermissionDenied
from medops.features.views import FeatureView
from medops.pipelines.dag import Step
from medops.pipelines.fingerprints import code_fingerprint, digest, environment_fingerprint, file_digest
from medops.pipelines.records import latest_done
from medops.pipelines.runner import Stopped
from medops.platform import Platform
from medops.services.projects.project import LoadedProject
from medops.store.lineage import dataset_node

if TYPE_CHECKING:
    from medops.features.executor import Executor
    from medops.monitoring.channels import Channels

PIPELINE_TAG = "pipeline_step_key"  # on the training runs a pipeline made: an interrupted attempt's run is adopted
# The kinds a Dask executor runs on a worker. Features stays here (it sends its own partitions to the
# executor); register stays here too (it tells the alert channels, whose secrets this process holds).
WORKER_KINDS = ("ingest", "training_set", "train", "evaluate")


def project_steps(project: LoadedProject) -> list[Step]:
    """The DAG of the project file: monitoring first (it judges what production did, and an alert that
    retrains is answered by the steps after it), then the sources and the sections that use them."""
    spec = project.spec
    steps = [Step("monitor", "monitor", (), f"judge {spec.name}'s closed months in production")] if spec.monitor else []
    steps += [Step(f"ingest.{name}", "ingest", (), f"ingest {name} through its contract and de-identification")
              for name in spec.sources]  # fmt: skip
    views = project.features.views
    if views:
        needs = tuple(sorted({f"ingest.{v.source.partition('@')[0]}" for v in views.values()}))
        steps.append(Step("features", "features", needs, f"apply {len(views)} feature views"))
    train = spec.train
    if train is None:
        return steps
    if train.training_set is not None:
        ts = train.training_set
        if not views:
            raise ConfigError(f"{project.where(('train', 'training_set'))}: a training set needs feature views")
        needs = ("features", f"ingest.{ts.labels}") if ts.labels in spec.sources else ("features",)
        steps.append(Step("training_set", "training_set", needs, f"build training set {ts.name} point in time"))
        steps.append(Step("train", "train", ("training_set",), f"train {train.model.estimator}"))
    else:
        assert train.dataset is not None
        steps.append(Step("train", "train", (f"ingest.{train.dataset}",), f"train {train.model.estimator}"))
    if spec.evaluate is not None:
        steps.append(Step("evaluate", "evaluate", ("train",), "validate against the project's policy"))
        steps.append(Step("register", "register", ("evaluate",), f"register a version of {spec.name}"))
    return _with_batches(project, steps)


def _with_batches(project: LoadedProject, steps: list[Step]) -> list[Step]:
    """Each ``score`` batch right after the step that makes its input (after the ingests for a file): it
    scores with the version in production when it runs, before this run trains anything, so a challenger
    that stops the run at its gates never stops the batch."""
    spec = project.spec
    training_set = spec.train.training_set.name if spec.train and spec.train.training_set else None
    for name, batch in spec.score.items():
        need = (f"ingest.{batch.input}" if batch.input in spec.sources
                else "training_set" if batch.input == training_set else None)  # fmt: skip
        names = [s.name for s in steps]
        if need is not None and need not in names:
            raise ConfigError(f"{project.where(('score', name, 'input'))}: no step makes {batch.input!r}")
        at = names.index(need) + 1 if need else sum(n.startswith(("monitor", "ingest.")) for n in names)
        while at < len(names) and names[at].startswith("score."):  # the batches in the file's order
            at += 1
        what = f"score {batch.input} with {batch.model or spec.name}"
        steps.insert(at, Step(f"score.{name}", "score", (need,) if need else (), what))
    return steps


class ProjectActions:
    """What each kind of step does for one project, acting as ``caller``."""

    def __init__(
        self,
        ws: Platform,
        project: LoadedProject,
        caller: Caller,
        *,
        reason: str | None = None,
        channels: Channels | None = None,
        executor: str | None = None,
    ) -> None:
        self.ws, self.project, self.caller, self.reason = ws, project, caller, reason
        self.channels = channels  # where an approval request is told (with their secrets), beside the log
        self.executor_url = executor or "local"  # a Dask executor runs WORKER_KINDS on a worker; local: here
        self._executor: Executor | None = None  # opened for the first step that goes to it, closed by close()
        self._run: dict[str, Callable[[Step, str, Callable[[str], None], bool], dict[str, Any]]] = {
            "ingest": self._ingest,
            "features": self._features,
            "training_set": self._training_set,
            "train": self._train,
            "evaluate": self._evaluate,
            "register": self._register,
            "monitor": self._monitor,
            "score": self._score,
        }

    # --- what a step depends on -------------------------------------------------------
    def inputs(self, step: Step, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        common = {"code": code_fingerprint(), "environment": environment_fingerprint()}
        return {**self._inputs(step, previous or {}), **common}

    def _inputs(self, step: Step, previous: Mapping[str, Any]) -> dict[str, Any]:
        spec = self.project.spec
        if step.kind == "ingest":
            return self._ingest_inputs(step.name.partition(".")[2], previous)
        if step.kind == "monitor":
            return self._monitor_inputs()
        if step.kind == "score":
            return self._score_inputs(step.name.partition(".")[2], previous)
        if step.kind == "features":
            views = self.project.features
            return {
                "views": {name: self._view_version(v) for name, v in sorted(views.views.items())},
                "on_demand": {name: f.definition() for name, f in sorted(views.on_demand.items())},
            }
        assert spec.train is not None
        if step.kind == "training_set":
            ts = spec.train.training_set
            assert ts is not None
            views = self.project.features
            used = [v for v in ts.features if v in views.views]
            return {
                "section": ts.model_dump(mode="json"),
                "labels": self._dataset_version(ts.labels),
                "views": {v: self._view_version(views.views[v]) for v in used},
                "on_demand": {f: views.on_demand[f].definition() for f in ts.features if f in views.on_demand},
            }
        if step.kind == "train":
            data = spec.train.training_set.name if spec.train.training_set else spec.train.dataset
            assert data is not None
            return {"section": spec.train.model_dump(mode="json"), "data": self._dataset_version(data)}
        if step.kind == "evaluate":
            assert spec.evaluate is not None
            return {
                "section": spec.evaluate.model_dump(mode="json"),
                "champion": self._champion(),  # the production version's run the evaluation compares with
                "project": {k: getattr(spec, k) for k in ("name", "description", "intended_use", "population")},
            }
        if step.kind == "register":
            return {"model": spec.name}  # the run and the evaluation are what train and evaluate made
        raise ConfigError(f"no action for step kind {step.kind!r}")

    def _monitor_inputs(self) -> dict[str, Any]:
        """What a monitoring run would judge: the section, the version in production, how many predictions
        it has logged and the month now (a month is judged once it is over)."""
        from medops.clock import utc_now
        from medops.serving import prediction_log
        from medops.serving.models import resolve_ref

        spec = self.project.spec
        assert spec.monitor is not None
        name = spec.name
        try:
            production: str | None = resolve_ref(self.ws, name).ref
        except NotFound:
            production = None
        logged = prediction_log.count(self.ws, prediction_log.PredictionFilter(model=name))
        return {"section": spec.monitor.model_dump(mode="json"), "production": production, "predictions": logged,
                "month": f"{utc_now():%Y-%m}"}  # fmt: skip

    def _score_inputs(self, name: str, previous: Mapping[str, Any]) -> dict[str, Any]:
        """The batch's section, its input as the workspace holds it now, and the version that would score it."""
        from medops.serving.models import resolve_ref

        batch = self.project.spec.score[name]
        if self._is_dataset(batch.input):
            data: Any = {"dataset": batch.input, "version": self._dataset_version(batch.input)}
        else:
            data = self._digest(("score", name, "input"), batch.input, previous.get("data"))
        try:
            version = resolve_ref(self.ws, batch.model or self.project.spec.name)
            model: str | None = f"{version.model}:{version.version}@{version.artifact_sha256}"
        except (NotFound, InvalidInput):
            model = None  # nothing to score with yet: the step says so
        return {"section": batch.model_dump(mode="json"), "data": data, "model": model}

    def _is_dataset(self, value: str) -> bool:
        """A batch's input names a dataset (one of the sources, or another of the workspace's), else a file."""
        return value in self.project.spec.sources or self._dataset_version(value) is not None

    def _ingest_inputs(self, name: str, previous: Mapping[str, Any]) -> dict[str, Any]:
        from medops.data.ingest import key_fingerprint, uses_key
        from medops.identity.pseudonym_key import load_key
        from medops.services.projects.ingest import table_plan

        spec = self.project.spec
        source = spec.sources[name]
        deid = spec.deidentify
        plan = table_plan(self.project, name)  # what the ingest will do: its actions, contract, names lookup
        out: dict[str, Any] = {
            "source": source.model_dump(mode="json", exclude={"path"}),
            "deidentify": {"table": deid.tables[name].model_dump(mode="json"),
                           "reference_date": deid.reference_date.isoformat()},
        }  # fmt: skip
        contract = spec.contracts.get(name)
        if contract is not None:
            out["contract"] = self._digest(("contracts", name), contract, previous.get("contract"))
        if source.format == "sql":
            # a query's rows are known only once read: it runs every time (an unchanged result is the same version)
            out["data"] = {"query": digest(source.query), "read_now": uuid.uuid4().hex}
        else:
            assert source.path is not None
            out["data"] = self._digest(("sources", name, "path"), source.path, previous.get("data"))
        if plan.names is not None:  # free-text redaction looks names up in another source: its file counts too
            assert deid.names is not None
            out["names"] = deid.names.model_dump(mode="json")
            names_path = spec.sources[deid.names.source].path
            if names_path is not None:
                where = ("sources", deid.names.source, "path")
                out["names_data"] = self._digest(where, names_path, previous.get("names_data"))
        if uses_key(plan.actions):  # another key makes other pseudonyms: a key id, never the key
            try:
                out["pseudonym_key"] = key_fingerprint(load_key(key_file=self.ws.settings.pseudonym_key_file))
            except MedopsError:
                out["pseudonym_key"] = None  # the ingest itself says what is wrong with the key
        return out

    def _digest(self, where: tuple[str, ...], relative: str, previous: Any) -> dict[str, Any]:
        """A file's digest, or an error naming the file and the project file's line that names it."""
        path = self.project.resolve(relative)
        try:
            return file_digest(path, previous)
        except OSError as exc:
            raise InvalidInput(f"{self.project.where(where)}: {path} can't be read ({exc.strerror})") from None

    def _dataset_version(self, name: str) -> str | None:
        try:
            return get_dataset(self.ws.db, name).version
        except NotFound:
            return None

    def _view_version(self, view: FeatureView) -> str | None:
        """The version ``features apply`` would give the view now (None while its source has no dataset)."""
        source = self._dataset_version(view.source)
        return None if source is None else view.version(source)

    def _upstream(self, kind: str, field: str) -> str | None:
        done = latest_done(self.ws, self.project.spec.name, kind)
        return None if done is None or done.outputs is None else done.outputs.get(field)

    def _champion(self) -> str | None:
        """The run behind the production version, unless it is the run to evaluate (then there is none)."""
        from medops.services.projects.evaluate import production_run

        return production_run(self.ws, self.project.spec.name, self._upstream("train", "run") or "")

    # --- doing it -----------------------------------------------------------------------
    def run(self, step: Step, key: str, say: Callable[[str], None], *, fresh: bool = False) -> dict[str, Any]:
        if self.executor_url == "local" or step.kind not in WORKER_KINDS:
            return self._run[step.kind](step, key, say, fresh)
        if self._executor is None:  # not before a step needs it: a run that skips everything starts no cluster
            from medops.features.executor import open_executor

            self._executor = open_executor(self.executor_url)
        home = str(self.ws.settings.home)
        task = (home, str(self.project.path), self.project.sha256, step.name, key, self.caller, self.reason, fresh)
        [(outputs, said, where)] = self._executor.map(run_on_worker, [task])
        for line in said:
            say(line)
        say(f"ran on {where} ({self._executor.name})")
        return outputs

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _monitor(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        """`medops monitor run` for the project's model, the alerts told to the channels; an alert whose rule
        retrains starts no second pipeline: the steps after this one, in this run, are its retraining."""
        from medops.monitoring.spec import governing_spec
        from medops.services.monitoring import MonitoringService

        name = self.project.spec.name
        try:
            ran = MonitoringService(self.ws).run(self.caller, name, channels=self.channels, retrain=False)
        except NotFound:  # nothing served yet (or no model of this name): nothing to judge, nothing wrong
            say(f"the prediction log holds nothing of {name} yet: nothing to judge")
            return {"windows": 0, "alerts": [], "retrain": []}
        judged = [w for w in ran.windows if w.judged]
        say(f"{len(ran.windows)} window(s) of {name}, {len(judged)} judged, {len(ran.alerts)} alert(s) opened")
        retrains = {r.name for r in governing_spec(self.ws).rules if r.retrain}
        retrain = [a for a in ran.alerts if a.rule in retrains]
        for alert in retrain:
            say(
                f"alert {alert.id[:12]} ({alert.rule}, retrain: true): the steps after this one are its retraining "
                "(they run where the data changed)"
            )
        return {"windows": len(ran.windows), "alerts": [a.id for a in ran.alerts], "retrain": [a.id for a in retrain]}

    def _score(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        """`medops score` of the batch: the version in production (or the one the section names), verified,
        into the output file, with its lineage and audit event."""
        from medops.services.serving import ServingService

        name = step.name.partition(".")[2]
        batch = self.project.spec.score[name]
        serving = ServingService(self.ws)
        ref = batch.model or self.project.spec.name
        try:
            serving.resolve(ref)
        except NotFound as exc:  # no model to score with yet (the run's later steps may make one): not an error
            say(f"nothing scored: {exc.message}")
            return {"scored": False}
        data = batch.input if self._is_dataset(batch.input) else str(self.project.resolve(batch.input))
        output = self.project.resolve(batch.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        result = serving.score(self.caller, ref, serving.score_input(data), output, keep=list(batch.keep),
                               overwrite=True, reason=self.reason)  # fmt: skip
        say(f"{result.rows:,} rows scored by {result.model}:{result.version} into {output}")
        stat = output.stat()  # later runs check the file by these, as git's index does, without reading it
        return {"output": str(output), "sha256": result.output_sha256, "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns, "rows": result.rows, "model": result.model,
                "version": result.version}  # fmt: skip

    def _ingest(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.data.ingest import ingest
        from medops.services.projects.ingest import table_plan

        name = step.name.partition(".")[2]
        result = ingest(self.ws, table_plan(self.project, name), actor=self.caller.user, reason=self.reason)
        d = result.dataset
        quarantined = result.quarantine.rows if result.quarantine else 0
        say(f"{d.ref}: {d.rows:,} rows{f', {quarantined:,} quarantined' if quarantined else ''}"
            f"{'' if result.new else ' (the same data as a stored version)'}")  # fmt: skip
        return {"dataset": d.name, "version": d.version, "rows": d.rows}

    def _features(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.features import FeatureStore

        with FeatureStore(self.ws, self.project.features) as store:
            applied = store.apply(self.caller.user, reason=self.reason)
        say(", ".join(f"{r.view.ref}{'' if r.new else ' (unchanged)'}" for r in applied))
        return {"views": {r.view.name: r.view.version for r in applied}}

    def _training_set(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.services.projects.train import build_training_set

        spec = self.project.spec.train
        assert spec is not None
        info, _ = build_training_set(self.ws, self.project, spec, self.caller.user, self.reason, say)
        return {"dataset": info.name, "version": info.version, "rows": info.rows}

    def _train(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.services.projects.train import train_from_project
        from medops.training.tracking import Tracker

        spec = self.project.spec.train
        assert spec is not None
        adopted = (
            []
            if fresh
            else Tracker(self.ws).list_runs(
                experiment=spec.experiment, state="finished", tags={PIPELINE_TAG: key}, limit=1
            )
        )
        if adopted:  # an interrupted attempt finished its training before its step was recorded: no second run
            run = adopted[0]
            say(f"run {run.short} made by an interrupted attempt with the same inputs: adopted")
            return {"run": run.id, "model_sha256": run.tags.get("model_sha256", "")}
        made = latest_done(self.ws, self.project.spec.name, "training_set")  # in this run, just before
        built = f"{made.outputs['dataset']}@{made.outputs['version']}" if made and made.outputs else None
        result = train_from_project(self.ws, self.project, caller=self.caller, reason=self.reason, say=say,
                                    tags={PIPELINE_TAG: key}, training_set=built)  # fmt: skip
        m = result.metrics
        say(f"run {result.run_id[:12]}: test AUROC {m['test_auroc']:.3f}, Brier {m['test_brier']:.3f}")
        return {"run": result.run_id, "model_sha256": result.model_sha256}

    def _evaluate(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.evaluation.records import list_for
        from medops.services.projects.evaluate import evaluate_from_project

        run = self._upstream("train", "run")
        if run is None:
            raise ConfigError("there is no trained run to evaluate: the train step has not finished")
        champion = self._champion()
        for found in [] if fresh else list_for(self.ws, run):  # the same run, file and champion: not again
            if found.project_sha256 == self.project.sha256 and found.champion_run_id == champion:
                say(f"evaluation {found.short} of run {run[:12]} with this project file: reused")
                return {"evaluation": found.id, "run": run, "passed": found.passed}
        done = evaluate_from_project(self.ws, self.project, run, champion=champion, caller=self.caller)
        info = done.info
        failed = [g["criterion"] for g in info.gates if not g["passed"]]
        say(f"evaluation {info.short}: {'passed' if info.passed else 'failed ' + ', '.join(failed[:4])}")
        return {"evaluation": info.id, "run": run, "passed": info.passed}

    def _register(self, step: Step, key: str, say: Callable[[str], None], fresh: bool) -> dict[str, Any]:
        from medops.evaluation.records import get as get_evaluation
        from medops.registry import versions
        from medops.services.registry import RegistryService

        run = self._upstream("train", "run")
        evaluation = self._upstream("evaluate", "evaluation")
        if run is None or evaluation is None:
            raise ConfigError("there is nothing to register: the train and evaluate steps have not finished")
        info = get_evaluation(self.ws, evaluation)
        if not info.passed:
            failed = [g["criterion"] for g in info.gates if not g["passed"]]
            raise Stopped(f"evaluation {info.short} did not pass ({', '.join(failed[:4])}): nothing registered")
        if not info.governing:  # made under another file's policy: it could never gate production
            raise Stopped(
                f"evaluation {info.short} was made with {self.project.path.name}, not the workspace's project file, "
                "so it can't gate production: nothing registered"
            )
        name = self.project.spec.name
        try:
            existing = [v for v in versions.versions(self.ws, name) if v.run_id == run]
        except NotFound:
            existing = []
        if existing:  # registered before (by hand, or by an interrupted attempt): the same version, not another
            found = existing[0]
            say(f"run {run[:12]} is {name}:{found.version} already")
            if not found.required_approvals and found.stage != "production":
                return self._auto_promote(RegistryService(self.ws), found.ref, name, found.version, say)
            return {"model": name, "version": found.version}
        registry = RegistryService(self.ws)
        registered = registry.register(self.caller, run, name, evaluation=evaluation, reason=self.reason)
        ref = f"{name}:{registered.version}"
        if registered.required_approvals:
            asked = registry.request_approvals(self.caller, ref, reason=self.reason)
            say(f"{ref} registered; signatures requested from {', '.join(asked.roles)}")
            if self.channels is not None:
                from medops.monitoring.channels import approval_message as channel_message

                told = self.channels.send(
                    channel_message(name, registered.version, asked.roles, self.caller.user, self.reason),
                    [c for c in self.channels.configured() if c != "log"],  # the registry's log has it already
                )
                if told:
                    say("told: " + ", ".join(f"{o.channel} {'ok' if o.delivered else o.detail}" for o in told))
            return {"model": name, "version": registered.version}
        return self._auto_promote(registry, ref, name, registered.version, say)

    def _auto_promote(
        self, registry: Any, ref: str, name: str, version: int, say: Callable[[str], None]
    ) -> dict[str, Any]:
        """A policy without signatures said ``auto_promote: true`` (the only way it can be valid): production
        now, by the pipeline's caller, audited as any promotion; a caller who may not promote stops here."""
        from medops.evaluation.governing import governing_policy

        policy = governing_policy(self.ws)
        if policy is None or not policy.spec.policy.auto_promote:
            raise Stopped(f"{ref} registered, but its policy names no signature and no auto_promote: not promoted")
        try:
            registry.promote(self.caller, ref, "production", reason=self.reason or "auto_promote: every gate passed")
        except PermissionDenied as exc:
            raise Stopped(
                f"{ref} registered; auto_promote needs an ML engineer or admin to run it: {exc.message}"
            ) from None
        say(f"{ref} registered and promoted to production (auto_promote: the policy names no signature)")
        return {"model": name, "version": version, "promoted": True}

    # --- what it made ----------------------------------------------------------------------
    def gone(self, step: Step, outputs: Mapping[str, Any]) -> str | None:
        try:
            if step.kind in ("ingest", "training_set"):
                get_dataset(self.ws.db, f"{outputs['dataset']}@{outputs['version']}")
            elif step.kind == "features":
                return self._views_gone(outputs["views"])
            elif step.kind == "train":
                from medops.training.tracking import Tracker

                if Tracker(self.ws).get(outputs["run"]).state != "finished":
                    return f"run {str(outputs['run'])[:12]} is not finished"
            elif step.kind == "evaluate":
                from medops.evaluation.records import get as get_evaluation

                get_evaluation(self.ws, outputs["evaluation"])
            elif step.kind == "register":
                from medops.registry import versions

                versions.get(self.ws, outputs["model"], int(outputs["version"]))
            elif step.kind == "score" and outputs.get("scored", True):
                from pathlib import Path

                path = Path(outputs["output"])
                stat = path.stat() if path.is_file() else None
                if stat is None or (stat.st_size, stat.st_mtime_ns) != (outputs["size"], outputs["mtime_ns"]):
                    return f"{path} is gone or was changed"
        except (NotFound, KeyError):
            return "what it made is no longer there"
        return None

    def _views_gone(self, views: Mapping[str, str]) -> str | None:
        from medops.store.schema import FeatureViewVersion

        with self.ws.db.read() as session:
            for name, version in views.items():
                if session.get(FeatureViewVersion, (name, version)) is None:
                    return f"view {name}@{version[:12]} is no longer applied"
        return None

    def nodes(self, step: Step, outputs: Mapping[str, Any]) -> list[str]:
        from medops.evaluation.records import evaluation_node
        from medops.features.store import view_node
        from medops.registry.versions import version_node
        from medops.training.tracking import run_node

        if step.kind in ("ingest", "training_set"):
            return [dataset_node(outputs["dataset"], outputs["version"])]
        if step.kind == "features":
            return [view_node(n, v) for n, v in outputs["views"].items()]
        if step.kind == "train":
            return [run_node(outputs["run"])]
        if step.kind == "evaluate":
            return [evaluation_node(outputs["evaluation"])]
        if step.kind == "register":
            return [version_node(outputs["model"], int(outputs["version"]))]
        if step.kind == "monitor":
            return [f"alert:{a}" for a in outputs.get("alerts", [])]
        if step.kind == "score" and "sha256" in outputs:
            from medops.serving.batch import predictions_node

            return [predictions_node(outputs["sha256"])]
        return []


def run_on_worker(
    home: str, project_path: str, sha256: str, name: str, key: str, caller: Caller, reason: str | None, fresh: bool
) -> tuple[dict[str, Any], list[str], str]:
    """One step in a Dask worker: the workspace opened from its folder (the worker must see it, as it must
    see the artifact store), the project file read again and refused if it changed since the run began,
    the step done as ``caller``, passed down from the process that verified its credential. Returns its
    outputs, what it said and the worker's host and process."""
    import os
    import socket
    from pathlib import Path

    from medops.errors import Conflict
    from medops.services.projects.project import load_project
    from medops.workspace import Workspace

    project = load_project(Path(project_path))
    if project.sha256 != sha256:
        raise Conflict(f"{project_path} changed while the pipeline ran", hint="run the pipeline again")
    said: list[str] = []
    with Workspace.open(Path(home)) as ws:
        step = next(s for s in project_steps(project) if s.name == name)
        outputs = ProjectActions(ws, project, caller, reason=reason).run(step, key, said.append, fresh=fresh)
    return outputs, said, f"{socket.gethostname()} pid {os.getpid()}"
