"""edgepipe's TorchServe handler, packed into every archive as it is: named tensors in, named tensors out.

A request body is JSON (`{"inputs": {name: nested list}}`) or an `.npz` of named arrays (content type
`application/octet-stream`); the answer is the same form: JSON `{"outputs": {name: nested list}}`, or an `.npz`
when the request was one. A body that cannot be read, a missing input, a lossy dtype or a wrong shape is answered
400 naming the problem; a model that fails on an input is answered 500; the worker keeps serving either way. It
imports only numpy and torch (what the TorchServe worker has) and stands alone (TorchServe loads it by itself)."""
import io
import json
import os
import zipfile

import numpy as np
import torch

_program = None
_signature = None


def _load(context):
    global _program, _signature
    folder = context.system_properties.get("model_dir")
    with open(os.path.join(folder, "signature.json")) as fh:
        _signature = json.load(fh)
    _program = torch.export.load(os.path.join(folder, "model.pt2")).module()


def _decode(body):
    """(named arrays, binary) of one request, or raises ValueError naming the problem."""
    if isinstance(body, dict):
        body = body.get("body", body.get("data", body))
    if isinstance(body, (bytes, bytearray)) and body[:2] == b"PK":
        try:
            with np.load(io.BytesIO(bytes(body)), allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}, True
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"the body is not a readable .npz: {exc}") from None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the body is neither JSON nor an .npz: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
        raise ValueError("the JSON body must be {\"inputs\": {name: nested list}}")
    return body["inputs"], False


def _tensors(named):
    expected = ", ".join(s["name"] for s in _signature["inputs"])
    found = []
    for spec in _signature["inputs"]:
        if spec["name"] not in named:
            raise ValueError(f"input '{spec['name']}' is missing (inputs: {expected})")
        try:
            array = np.asarray(named[spec["name"]])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input '{spec['name']}' is not an array: {exc}") from None
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, spec["dtype"], "same_kind"):
            raise ValueError(f"input '{spec['name']}' is {array.dtype}, which does not convert to {spec['dtype']}")
        rows = slice(1, None) if _signature.get("batch") == "dynamic" else slice(0, None)
        if array.ndim != len(spec["shape"]) or list(array.shape[rows]) != list(spec["shape"][rows]):
            raise ValueError(f"input '{spec['name']}' has shape {list(array.shape)}, expected {spec['shape']}")
        found.append(torch.from_numpy(np.ascontiguousarray(array.astype(spec["dtype"]))))
    return found


def _flat(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flat(v)]
    return [t for v in value for t in _flat(v)]


def _npz(arrays):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w") as entry:
                np.lib.format.write_array(entry, value, allow_pickle=False)
    return buffer.getvalue()


def _answer(request, context, index):
    try:
        named, binary = _decode(request)
        tensors = _tensors(named)
    except ValueError as exc:
        context.set_response_status(400, str(exc)[:300], idx=index)
        return json.dumps({"error": str(exc)})
    try:
        with torch.no_grad():
            outputs = _flat(_program(*tensors))
    except Exception as exc:          # the model failed on this input: the worker stays up for the next
        context.set_response_status(500, f"{type(exc).__name__}: {exc}"[:300], idx=index)
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"})
    arrays = {name: t.detach().numpy() for name, t in zip(_signature["outputs"], outputs)}
    if binary:
        return _npz(arrays)
    return json.dumps({"outputs": {n: a.tolist() for n, a in arrays.items()}})


def handle(data, context):
    if _program is None:
        _load(context)
    if data is None:
        return None
    return [_answer(request, context, index) for index, request in enumerate(data)]
