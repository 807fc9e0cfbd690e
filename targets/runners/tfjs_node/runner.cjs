// edgepipe's TF.js runner: loads a graph model (model.json + shards) from disk and answers JSON-line
// requests on stdin, one array per model input, in the order of the ready message's `inputs`:
//   {"op": "run", "inputs": [{"data": <base64>, "shape": [...], "dtype": "float32"|"int32"|"bool"}], "batch": B}
//   {"op": "bench", "inputs": [...], "warmup": W, "runs": N}
// and replies {"outputs": [{"data", "shape", "dtype"}]} in the order of the ready message's `outputs`.
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

const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };

function decode(item) {
  const bytes = Buffer.from(item.data, 'base64');
  const Kind = ARRAYS[item.dtype];
  if (!Kind) throw new Error(`unsupported input dtype ${item.dtype}`);
  const copy = new Uint8Array(bytes);   // aligned
  return tf.tensor(new Kind(copy.buffer, 0, copy.byteLength / Kind.BYTES_PER_ELEMENT), item.shape, item.dtype);
}

function encode(tensor) {
  const data = tensor.dataSync();
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { data: buffer, shape: tensor.shape, dtype: tensor.dtype };
}

// Signature keys when model.json has a signature (the source's names), else graph node names.
function ioNames(model) {
  const signature = model.modelSignature || {};
  const inputs = signature.inputs ? Object.keys(signature.inputs) : model.inputs.map((i) => i.name);
  const outputs = signature.outputs ? Object.keys(signature.outputs) : model.outputs.map((o) => o.name);
  return { inputs, outputs, keyed: Boolean(signature.inputs && signature.outputs) };
}

function predict(model, io, tensors) {
  const feed = io.keyed ? Object.fromEntries(io.inputs.map((n, i) => [n, tensors[i]])) : tensors;
  let out = model.execute(feed.length === 1 ? feed[0] : feed, io.outputs);
  out = Array.isArray(out) ? out : [out];
  const encoded = out.map(encode);
  tf.dispose(out);
  return encoded;
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
  const io = ioNames(model);
  const inputs = model.inputs.map((i, k) => ({ name: io.inputs[k], shape: i.shape, dtype: i.dtype }));
  process.stdout.write(JSON.stringify({ ready: true, backend: tf.getBackend(), tfjs: tf.version.tfjs, inputs,
    outputs: io.outputs }) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    try {
      const all = request.inputs.map(decode);
      if (request.op === 'run') {
        const batch = request.batch;
        const chunks = io.outputs.map(() => []);
        const shapes = io.outputs.map(() => null);
        const dtypes = io.outputs.map(() => 'float32');
        for (let i = 0; i + batch <= all[0].shape[0]; i += batch) {
          const xs = all.map((t) => t.slice([i], [batch]));
          predict(model, io, xs).forEach((o, k) => { chunks[k].push(o.data); shapes[k] = o.shape; dtypes[k] = o.dtype; });
          tf.dispose(xs);
        }
        const outputs = chunks.map((parts, k) => ({
          data: Buffer.concat(parts).toString('base64'), dtype: dtypes[k],
          shape: [parts.length * (shapes[k] ? shapes[k][0] : 0), ...(shapes[k] ? shapes[k].slice(1) : [])],
        }));
        process.stdout.write(JSON.stringify({ outputs }) + '\n');
      } else if (request.op === 'bench') {
        for (let i = 0; i < request.warmup; i++) predict(model, io, all);
        const samples = [];
        for (let i = 0; i < request.runs; i++) {
          const start = process.hrtime.bigint();
          predict(model, io, all);
          samples.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
        process.stdout.write(JSON.stringify({ samples_ms: samples }) + '\n');
      } else {
        throw new Error(`unknown op ${request.op}`);
      }
      tf.dispose(all);
    } catch (err) {
      process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err) }) + '\n');
    }
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err) }) + '\n');
  process.exit(1);
});
