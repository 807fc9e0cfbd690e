"""edgepipe's TorchServe handler, packed into every archive as it is: named tensors in, named tensors out.

A request body is JSON (`{"inputs": {name: nested list}}`) or an `.npz` of named arrays (content type
`application/octet-stream`); the answer is the same form: JSON `{"outputs": {name: nested list}}`, or an `.npz`
when the request was one. A body that cannot be read is answered 400 naming what was wrong, and the worker
keeps serving. It imports only numpy and torch (what the TorchServe worker has)."""
import io
import json
import os

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
    if isinstance(body, dict) and "body" in body:
        body = body["body"]
    elif isinstance(body, dict) and "data" in body:
        body = body["data"]
    if isinstance(body, (bytes, bytearray)) and body[:2] == b"PK":
        with np.load(io.BytesIO(bytes(body)), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}, True
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the body is neither JSON nor an .npz: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
        raise ValueError("the JSON body must be {\"inputs\": {name: nested list}}")
    return body["inputs"], False


def _tensors(named):
    found = []
    expected = ", ".join(s["name"] for s in _signature["inputs"])
    for spec in _signature["inputs"]:
        if spec["name"] not in named:
            raise ValueError(f"input '{spec['name']}' is missing (inputs: {expected})")
        try:
            array = np.asarray(named[spec["name"]], dtype=spec["dtype"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input '{spec['name']}' is not a {spec['dtype']} array: {exc}") from None
        if list(array.shape[1:]) != list(spec["shape"][1:]):
            raise ValueError(f"input '{spec['name']}' has shape {list(array.shape)}, expected {spec['shape']}")
        found.append(torch.from_numpy(np.ascontiguousarray(array)))
    return found


def _flat(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flat(v)]
    return [t for v in value for t in _flat(v)]


def handle(data, context):
    if _program is None:
        _load(context)
    if data is None:
        return None
    answers = []
    for index, request in enumerate(data):
        try:
            named, binary = _decode(request)
            with torch.no_grad():
                outputs = _flat(_program(*_tensors(named)))
        except ValueError as exc:
            context.set_response_status(400, str(exc), idx=index)
            answers.append(json.dumps({"error": str(exc)}))
            continue
        arrays = {name: t.detach().numpy() for name, t in zip(_signature["outputs"], outputs)}
        if binary:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            answers.append(buffer.getvalue())
        else:
            answers.append(json.dumps({"outputs": {n: a.tolist() for n, a in arrays.items()}}))
    return answers
