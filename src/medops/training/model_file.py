"""A run's model file, in skops format: loading it builds only scikit-learn's own types and the safe
types the trainers declare (``medops.training.estimators.safe_types``), and runs no pickle.

skops names each stored object by its ``id()`` and stamps each zip member with the time of writing,
so two dumps of the same model differ. Reproduction compares model files by SHA-256, so the file is
made canonical: ids renumbered in order of first appearance in the schema (one-to-one, so shared
objects stay shared), except plain values (numbers, strings), which skops writes whole at every use
and which get an id per use; arrays renamed to match; members written in order with a fixed time.
The result is still a plain skops file.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from medops.errors import InvalidInput
from medops.training.estimators import safe_types
from medops.training.trainers import FittedModel

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_ARRAY = re.compile(r"^(\d+)\.npy$")


def dumps(model: FittedModel) -> bytes:
    """The model file: the pipeline, its features and classes, as canonical skops bytes."""
    import skops.io as sio

    doc = {"pipeline": model.pipeline, "features": list(model.features), "classes": list(model.classes)}
    return canonical(bytes(sio.dumps(doc)))


def loads(blob: bytes) -> FittedModel:
    """The model from a file that passed its SHA-256 check; types outside the safe list are refused."""
    import skops.io as sio

    safe = safe_types()
    try:
        doc = sio.loads(blob, trusted=sorted(safe))
    except sio.exceptions.UntrustedTypesFoundException:
        unsafe = sorted(set(sio.get_untrusted_types(data=blob)) - safe)
        raise InvalidInput(f"the model file holds types outside the safe list: {', '.join(unsafe[:5])}") from None
    except zipfile.BadZipFile:
        raise InvalidInput("the model file is not a skops file (made by an older medops? train it again)") from None
    return FittedModel(doc["pipeline"], list(doc["features"]), list(doc["classes"]))


def canonical(raw: bytes) -> bytes:
    """The same skops file with ids renumbered by first appearance and members at a fixed time."""
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = json.loads(source.read("schema.json"))
    numbers: dict[int, int] = {}

    fresh = iter(range(10**9, 2 * 10**9))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int) and node.get("is_json") is True:
                    # A number or a string is written whole at every use; whether two equal values were one
                    # object or two depends on how they were made, so each use gets an id of its own.
                    out[key] = next(fresh)
                elif key == "__id__" and isinstance(value, int):
                    out[key] = numbers.setdefault(value, len(numbers) + 1)
                elif key == "file" and isinstance(value, str) and (array := _ARRAY.match(value)):
                    out[key] = f"{numbers.setdefault(int(array[1]), len(numbers) + 1)}.npy"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    renamed = walk(schema)
    members = {"schema.json": json.dumps(renamed, indent=1).encode()}
    for info in source.infolist():
        match = _ARRAY.match(info.filename)
        if match:
            old = int(match[1])
            if old not in numbers:  # an array the schema never names: keep it, renumbered after the rest
                numbers[old] = len(numbers) + 1
            members[f"{numbers[old]}.npy"] = source.read(info.filename)
        elif info.filename != "schema.json":
            members[info.filename] = source.read(info.filename)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(members, key=lambda n: (n != "schema.json", len(n), n)):
            entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, members[name])
    return out.getvalue()
