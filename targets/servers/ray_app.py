"""edgepipe's Ray Serve application, shipped as it is beside the model: ONNX Runtime behind a deployment that
batches concurrent requests (`@serve.batch`), named tensors in and out as JSON or `.npz`.

A request body is JSON (`{"inputs": {name: nested list}}`) or an `.npz` of named arrays; the answer has the same
form. A body that cannot be read is answered 400 naming what was wrong. `serve_config.yaml` beside this file
deploys it (`serve run serve_config.yaml` here, or `serve deploy` on a cluster)."""
import io
import json
import os

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

HERE = os.path.dirname(os.path.abspath(__file__))


@serve.deployment
class OnnxModel:
    def __init__(self, model: str = "model.onnx", max_batch_size: int = 16, batch_wait_timeout_s: float = 0.005,
                 threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(os.path.join(HERE, model), options, providers=["CPUExecutionProvider"])
        with open(os.path.join(HERE, "signature.json")) as fh:
            self.signature = json.load(fh)
        self.predict.set_max_batch_size(max_batch_size)
        self.predict.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _inputs(self, body: bytes):
        if body[:2] == b"PK":
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}, True
        try:
            named = json.loads(body)["inputs"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the body must be an .npz or JSON {{\"inputs\": {{name: nested list}}}}: {exc}") from None
        if not isinstance(named, dict):
            raise ValueError("'inputs' must map each input name to a nested list")
        return named, False

    def _arrays(self, named):
        found = {}
        for spec in self.signature["inputs"]:
            if spec["name"] not in named:
                raise ValueError(f"input '{spec['name']}' is missing")
            try:
                array = np.asarray(named[spec["name"]], dtype=spec["dtype"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"input '{spec['name']}' is not a {spec['dtype']} array: {exc}") from None
            if array.ndim != len(spec["shape"]) or any(isinstance(d, int) and d != n
                                                       for d, n in zip(spec["shape"][1:], array.shape[1:])):
                raise ValueError(f"input '{spec['name']}' has shape {list(array.shape)}, expected {spec['shape']}")
            found[spec["name"]] = array
        return found

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def predict(self, requests):
        """One ONNX Runtime call for every request in the batch, split back by each request's rows."""
        sizes = [len(next(iter(r.values()))) for r in requests]
        joined = {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
        if self.signature.get("batch") != "dynamic" and len(requests) > 1:
            results = [self.session.run(None, r) for r in requests]
            return [dict(zip(self.signature["outputs"], out)) for out in results]
        outputs = self.session.run(None, joined)
        answers, start = [], 0
        for size in sizes:
            answers.append({name: out[start:start + size] for name, out in zip(self.signature["outputs"], outputs)})
            start += size
        return answers

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        try:
            named, binary = self._inputs(body)
            arrays = self._arrays(named)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        outputs = await self.predict(arrays)
        if binary:
            buffer = io.BytesIO()
            np.savez(buffer, **outputs)
            return Response(buffer.getvalue(), media_type="application/octet-stream")
        return JSONResponse({"outputs": {name: value.tolist() for name, value in outputs.items()}})


app = OnnxModel.bind()
