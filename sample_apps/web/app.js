// Loads each bundled TF.js model, classifies the bundled samples and shows predictions and latency.
// Results are also published on window.edgepipeResults for automated checks.
'use strict';

async function loadJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function drawSample(values, shape, layout) {
  if (shape.length !== 4) return document.createTextNode(`${values.length} values`);
  const canvas = document.createElement('canvas');
  const [h, w] = layout === 'NCHW' ? shape.slice(-2) : shape.slice(-3, -1);
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  const max = Math.max(...values) || 1;
  for (let i = 0; i < w * h; i++) {
    const v = 255 - Math.round((values[i] / max) * 255);
    image.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

async function runModel(entry, config, samples) {
  const model = await tf.loadGraphModel(`models/${entry.path}/model.json`);
  const shape = config.input_shape;
  const predictions = [];
  for (const sample of samples.inputs) {
    const output = tf.tidy(() => model.execute(tf.tensor(sample, shape, 'float32')));
    predictions.push(Array.from(await output.data()));
    output.dispose();
  }
  const timings = [];
  const x = tf.tensor(samples.inputs[0], shape, 'float32');
  for (let i = 0; i < config.warmup + config.runs; i++) {
    const start = performance.now();
    const out = model.execute(x);
    await out.data();
    out.dispose();
    if (i >= config.warmup) timings.push(performance.now() - start);
  }
  x.dispose();
  timings.sort((a, b) => a - b);
  return { name: entry.name, predictions, p50_ms: timings[Math.floor(timings.length / 2)] };
}

function render(result, config, samples) {
  const section = document.createElement('section');
  section.innerHTML = `<h2>${result.name}</h2><p>median latency: ${result.p50_ms.toFixed(3)} ms (${tf.getBackend()} backend)</p>`;
  const table = document.createElement('table');
  table.innerHTML = '<tr><th>sample</th><th>label</th><th>prediction</th></tr>';
  result.predictions.forEach((logits, i) => {
    const row = table.insertRow();
    row.insertCell().appendChild(drawSample(samples.inputs[i], config.input_shape, config.layout));
    row.insertCell().textContent = config.labels[samples.labels[i]] ?? samples.labels[i];
    const cell = row.insertCell();
    const predicted = argmax(logits);
    cell.textContent = config.labels[predicted] ?? predicted;
    if (predicted !== samples.labels[i]) cell.className = 'bad';
  });
  section.appendChild(table);
  document.getElementById('models').appendChild(section);
}

async function main() {
  const status = document.getElementById('status');
  try {
    const [config, samples] = await Promise.all([loadJson('config.json'), loadJson('samples.json')]);
    tf.wasm.setWasmPaths('vendor/');
    await tf.setBackend('wasm');
    await tf.ready();
    const results = [];
    for (const entry of config.models) {
      const result = await runModel(entry, config, samples);
      results.push(result);
      render(result, config, samples);
    }
    window.edgepipeResults = { backend: tf.getBackend(), results };
    status.textContent = `Ran ${results.length} model(s) on ${samples.inputs.length} samples.`;
    document.body.dataset.status = 'done';
  } catch (err) {
    status.textContent = `Error: ${err.message}`;
    document.body.dataset.status = 'error';
    throw err;
  }
}

main();
