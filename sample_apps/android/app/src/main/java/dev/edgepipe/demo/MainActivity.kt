package dev.edgepipe.demo

import android.app.Activity
import android.os.Bundle
import android.widget.ScrollView
import android.widget.TextView
import org.json.JSONObject
import kotlin.concurrent.thread

/** Classifies the bundled samples with every bundled model and shows predictions, agreement with the outputs
 * recorded when edgepipe validated the model, and the latency measured on this phone. */
class MainActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TextView(this).apply { setPadding(32, 32, 32, 32); textSize = 14f }
        setContentView(ScrollView(this).apply { addView(text) })
        text.text = "Running ${ModelInfo.MODELS.size} models on ${ModelInfo.SAMPLE_COUNT} samples..."
        thread {
            val report = runCatching { runAll() }.getOrElse { "Failed: ${it.message}" }
            runOnUiThread { text.text = report }
        }
    }

    private fun runAll(): String {
        val samples = JSONObject(assets.open("samples.json").bufferedReader().use { it.readText() })
        val inputs = samples.getJSONArray("inputs").let { arr -> List(arr.length()) { floats(arr.getJSONArray(it)) } }
        val expected = samples.getJSONObject("expected")
        val lines = mutableListOf("edgepipe demo: ${ModelInfo.TARGET} target, input ${ModelInfo.INPUT_SHAPE.toList()} (${ModelInfo.LAYOUT})")
        for (model in ModelInfo.MODELS) {
            openClassifier(this, model, threads = 1).use { classifier ->
                val outputs = inputs.map { classifier.run(it) }
                val reference = expected.getJSONArray(model.name).let { arr -> List(arr.length()) { floats(arr.getJSONArray(it)) } }
                val agree = outputs.indices.count { argmax(outputs[it]) == argmax(reference[it]) }
                val maxDiff = outputs.indices.maxOf { i -> outputs[i].indices.maxOf { j -> Math.abs(outputs[i][j] - reference[i][j]) } }
                repeat(ModelInfo.WARMUP) { classifier.run(inputs[0]) }
                val times = List(ModelInfo.RUNS) {
                    val start = System.nanoTime(); classifier.run(inputs[0]); (System.nanoTime() - start) / 1e6
                }.sorted()
                val predictions = outputs.map { ModelInfo.LABELS.getOrElse(argmax(it)) { "?" } }
                lines += "\n${model.name} (${model.asset})\n  predictions $predictions\n" +
                    "  top-1 agrees with build: $agree/${outputs.size}, max |diff| %.2e\n".format(maxDiff) +
                    "  p50 %.3f ms, p90 %.3f ms (measured on this phone, 1 thread)".format(times[times.size / 2], times[times.size * 9 / 10])
            }
        }
        return lines.joinToString("\n")
    }

    private fun floats(values: org.json.JSONArray) = FloatArray(values.length()) { values.getDouble(it).toFloat() }

    private fun argmax(values: FloatArray) = values.indices.maxByOrNull { values[it] } ?: -1
}
