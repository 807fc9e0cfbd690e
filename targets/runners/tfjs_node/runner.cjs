// edgepipe's TF.js runner: loads a graph model (model.json + shards) from disk and answers JSON-line
// requests on stdin: {"op": "run", "data": <base64 float32>, "shape": [...], "batch": B}
//                    {"op": "bench", "data": ..., "shape": [...], "warmup": W, "runs": N}
// Timing is taken here, around execute + dataSync, so pipe overhead never enters a latency figure.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');

function fromDisk(modelDir) {
  return {
    async load() {
      const model = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(modelDir, p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology, format: model.format, generatedBy: model.generatedBy,
        convertedBy: model.convertedBy, signature: model.signature, userDefinedMetadata: model.userDefinedMetadata,
        weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

function decode(request) {
  const bytes = Buffer.from(request.data, 'base64');
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return tf.tensor(Float32Array.from(floats), request.shape, 'float32');
}

function predict(model, input) {
  const out = model.execute(input);
  const first = Array.isArray(out) ? out[0] : out;
  const data = first.dataSync();
  const shape = first.shape;
  tf.dispose(out);
  return { data, shape };
}

async function main() {
  const [modelDir, backend, threads] = process.argv.slice(2);
  if (backend === 'wasm') {
    wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), path.sep));
    if (Number(threads) > 1) wasm.setThreadsCount(Number(threads));
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' is unavailable`);
  await tf.ready();
  const model = await tf.loadGraphModel(fromDisk(modelDir));
  const inputs = model.inputs.map((i) => ({ name: i.name, shape: i.shape, dtype: i.dtype }));
  process.stdout.write(JSON.stringify({ ready: true, backend: tf.getBackend(), tfjs: tf.version.tfjs, inputs }) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    try {
      const all = decode(request);
      if (request.op === 'run') {
        const batch = request.batch;
        const chunks = [];
        let outShape = null;
        for (let i = 0; i + batch <= all.shape[0]; i += batch) {
          const x = all.slice([i], [batch]);
          const { data, shape } = predict(model, x);
          outShape = shape;
          chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
          x.dispose();
        }
        const shape = [chunks.length * (outShape ? outShape[0] : 0), ...(outShape ? outShape.slice(1) : [])];
        process.stdout.write(JSON.stringify({ data: Buffer.concat(chunks).toString('base64'), shape }) + '\n');
      } else if (request.op === 'bench') {
        for (let i = 0; i < request.warmup; i++) predict(model, all);
        const samples = [];
        for (let i = 0; i < request.runs; i++) {
          const start = process.hrtime.bigint();
          predict(model, all);
          samples.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
        process.stdout.write(JSON.stringify({ samples_ms: samples }) + '\n');
      } else {
        throw new Error(`unknown op ${request.op}`);
      }
      all.dispose();
    } catch (err) {
      process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err) }) + '\n');
    }
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err) }) + '\n');
  process.exit(1);
});
