package dev.edgepipe.chat

import android.app.Activity
import android.os.Bundle
import android.widget.ScrollView
import android.widget.TextView
import java.io.File
import org.json.JSONObject
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/**
 * Runs every bundled language model with ExecuTorch's own LLM runner (LlmModule), greedy, on the prompt recorded
 * in chat.json, checks that its text begins with the continuation the same runner gave when edgepipe validated
 * the model on the build host, and shows time to first token and decode tokens/s measured on this phone.
 */
class ChatActivity : Activity() {
    private lateinit var output: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        output = TextView(this).apply { setPadding(24, 24, 24, 24); textSize = 13f }
        setContentView(ScrollView(this).apply { addView(output) })
        Thread { runAll() }.start()
    }

    private fun show(line: String) = runOnUiThread { output.append(line + "\n") }

    private fun runAll() {
        val chat = JSONObject(assets.open("chat.json").bufferedReader().use { it.readText() })
        show("edgepipe chat (${chat.getString("target")})")
        val models = chat.getJSONArray("models")
        var failures = 0
        for (i in 0 until models.length()) {
            val model = models.getJSONObject(i)
            val result = generate(model)
            val matches = result.text.startsWith(model.getString("expected"))
            if (!matches) failures++
            show("${model.getString("name")}: ${if (matches) "matches" else "DIFFERS"} the build host's text")
            show("  ${result.text.take(120)}")
            show("  first token %.1f ms, decode %.1f tokens/s".format(result.firstTokenMs, result.decodeTokensPerS))
        }
        show(if (failures == 0) "every model reproduced its continuation" else "$failures model(s) differ")
    }

    private class Generated(val text: String, val firstTokenMs: Double, val decodeTokensPerS: Double)

    private fun generate(model: JSONObject): Generated {
        val program = assetFile(model.getString("model"))
        val tokenizer = assetFile(model.getString("tokenizer"))
        val pieces = StringBuilder()
        var stats = JSONObject()
        val module = LlmModule(program.path, tokenizer.path, 0.0f)   // temperature 0: greedy, as validated
        try {
            module.load()
            val callback = object : LlmCallback {
                override fun onResult(result: String) { pieces.append(result) }
                override fun onStats(json: String) { stats = JSONObject(json) }
            }
            module.generate(model.getString("prompt"), model.getInt("seq_len"), callback, false)
        } finally {
            module.close()
        }
        val start = stats.optDouble("inference_start_ms")
        val prefilled = stats.optDouble("prompt_eval_end_ms")
        val firstToken = stats.optDouble("first_token_ms")
        val end = stats.optDouble("inference_end_ms")
        val decoded = stats.optDouble("generated_tokens")
        return Generated(pieces.toString(), firstToken - start, decoded / ((end - prefilled) / 1000.0))
    }

    /** The runner opens files by path: each asset is copied to the app's files folder once. */
    private fun assetFile(name: String): File {
        val file = File(filesDir, name)
        if (!file.isFile) {
            file.parentFile?.mkdirs()
            assets.open(name).use { input -> file.outputStream().use { input.copyTo(it) } }
        }
        return file
    }
}
