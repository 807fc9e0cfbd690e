"""edgepipe's Ray Serve application, shipped as it is beside the model: ONNX Runtime behind a deployment that
batches concurrent requests (`@serve.batch`), named tensors in and out as JSON or `.npz`.

A request body is JSON (`{"inputs": {name: nested list}}`) or an `.npz` of named arrays; the answer has the same
form. A body that cannot be read, a missing input, a lossy dtype or a wrong shape is answered 400 naming the
problem; a model failure is answered 500. Requests whose shapes cannot be joined (another sequence length) run
one by one. `serve_config.yaml` beside this file deploys it (`serve run serve_config.yaml` here)."""
import io
import json
import os
import zipfile

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

HERE = os.path.dirname(os.path.abspath(__file__))


def _npz(arrays):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w") as entry:
                np.lib.format.write_array(entry, value, allow_pickle=False)
    return buffer.getvalue()


@serve.deployment
class OnnxModel:
    def __init__(self, model: str = "model.onnx", max_batch_size: int = 16, batch_wait_timeout_s: float = 0.005):
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.path.join(HERE, model), providers=["CPUExecutionProvider"])
        with open(os.path.join(HERE, "signature.json")) as fh:
            self.signature = json.load(fh)
        self.predict.set_max_batch_size(max_batch_size)
        self.predict.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _inputs(self, body: bytes):
        if body[:2] == b"PK":
            try:
                with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                    return {name: npz[name] for name in npz.files}, True
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(f"the body is not a readable .npz: {exc}") from None
        try:
            named = json.loads(body)["inputs"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the body is neither JSON {{\"inputs\": {{name: nested list}}}} nor an .npz: "
                             f"{exc}") from None
        if not isinstance(named, dict):
            raise ValueError("'inputs' must map each input name to a nested list")
        return named, False

    def _arrays(self, named):
        found = {}
        dynamic = self.signature.get("batch") == "dynamic"
        for spec in self.signature["inputs"]:
            if spec["name"] not in named:
                raise ValueError(f"input '{spec['name']}' is missing")
            try:
                array = np.asarray(named[spec["name"]])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"input '{spec['name']}' is not an array: {exc}") from None
            if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, spec["dtype"], "same_kind"):
                raise ValueError(f"input '{spec['name']}' is {array.dtype}, which does not convert to {spec['dtype']}")
            fixed = [(d, n) for i, (d, n) in enumerate(zip(spec["shape"], array.shape)) if i or not dynamic]
            if array.ndim != len(spec["shape"]) or any(isinstance(d, int) and d != n for d, n in fixed):
                raise ValueError(f"input '{spec['name']}' has shape {list(array.shape)}, expected {spec['shape']}")
            found[spec["name"]] = array.astype(spec["dtype"])
        return found

    def _run(self, arrays):
        return dict(zip(self.signature["outputs"], self.session.run(None, arrays)))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def predict(self, requests):
        """One ONNX Runtime call for the whole batch where the requests can be joined, else one per request; a
        failure is that request's answer (an exception), not its neighbours'."""
        shapes = {tuple((name, a.shape[1:]) for name, a in sorted(r.items())) for r in requests}
        if self.signature.get("batch") == "dynamic" and len(shapes) == 1 and len(requests) > 1:
            sizes = [len(next(iter(r.values()))) for r in requests]
            try:
                joined = self._run({name: np.concatenate([r[name] for r in requests]) for name in requests[0]})
            except Exception:
                joined = None
            if joined is not None:
                answers, start = [], 0
                for size in sizes:
                    answers.append({name: out[start:start + size] for name, out in joined.items()})
                    start += size
                return answers
        answers = []
        for r in requests:
            try:
                answers.append(self._run(r))
            except Exception as exc:
                answers.append(exc)
        return answers

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        try:
            named, binary = self._inputs(body)
            arrays = self._arrays(named)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        outputs = await self.predict(arrays)
        if isinstance(outputs, Exception):
            return JSONResponse({"error": f"{type(outputs).__name__}: {outputs}"}, status_code=500)
        if binary:
            return Response(_npz(outputs), media_type="application/octet-stream")
        return JSONResponse({"outputs": {name: value.tolist() for name, value in outputs.items()}})


app = OnnxModel.bind()
