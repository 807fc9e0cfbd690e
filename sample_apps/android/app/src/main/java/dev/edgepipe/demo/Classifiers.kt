package dev.edgepipe.demo

import android.content.Context
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.tensorflow.lite.Interpreter
import java.io.File
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/** One bundled model and the tensor encoding of its input and output (written into ModelInfo.kt by edgepipe). */
data class BundledModel(
    val name: String,
    val asset: String,
    val format: String,
    val inputType: String,        // float32 | int8 | uint8 | int16 (16x8 models)
    val inputScale: Float,
    val inputZeroPoint: Int,
    val outputType: String,
    val outputScale: Float,
    val outputZeroPoint: Int,
)

/** Float input in the source model's layout in, float scores out, whatever the runtime. */
interface Classifier : AutoCloseable {
    fun run(input: FloatArray): FloatArray
}

fun openClassifier(context: Context, model: BundledModel, threads: Int): Classifier = when (model.format) {
    "tflite" -> LiteRtClassifier(context, model, threads)
    "pte" -> ExecuTorchClassifier(context, model)
    else -> throw IllegalArgumentException("this app has no runtime for ${model.format} (${model.name})")
}

/** LiteRT (`com.google.ai.edge.litert`): the .tflite is memory-mapped from the APK's uncompressed assets. */
class LiteRtClassifier(context: Context, private val model: BundledModel, threads: Int) : Classifier {
    private val interpreter: Interpreter
    private val inputBuffer: ByteBuffer
    private val outputBuffer: ByteBuffer
    private val outputSize: Int

    init {
        context.assets.openFd(model.asset).use { fd ->
            val mapped = FileInputStream(fd.fileDescriptor).channel.map(
                FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            interpreter = Interpreter(mapped, Interpreter.Options().setNumThreads(threads))
        }
        val shape = interpreter.getInputTensor(0).shape().map { it.toLong() }
        require(shape == ModelInfo.INPUT_SHAPE.toList()) { "${model.asset} takes $shape, ModelInfo says ${ModelInfo.INPUT_SHAPE.toList()}" }
        inputBuffer = ByteBuffer.allocateDirect(interpreter.getInputTensor(0).numBytes()).order(ByteOrder.nativeOrder())
        outputBuffer = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes()).order(ByteOrder.nativeOrder())
        outputSize = interpreter.getOutputTensor(0).numElements()
    }

    override fun run(input: FloatArray): FloatArray {
        inputBuffer.rewind()
        for (value in input) {
            when (model.inputType) {
                "float32" -> inputBuffer.putFloat(value)
                "int16" -> inputBuffer.putShort(quantize16(value))
                else -> inputBuffer.put(quantize(value))
            }
        }
        outputBuffer.rewind()
        interpreter.run(inputBuffer, outputBuffer)
        outputBuffer.rewind()
        return FloatArray(outputSize) {
            when (model.outputType) {
                "float32" -> outputBuffer.float
                "uint8" -> ((outputBuffer.get().toInt() and 0xFF) - model.outputZeroPoint) * model.outputScale
                "int16" -> (outputBuffer.short - model.outputZeroPoint) * model.outputScale
                else -> (outputBuffer.get() - model.outputZeroPoint) * model.outputScale
            }
        }
    }

    private fun quantize(value: Float): Byte {
        val (low, high) = if (model.inputType == "uint8") 0 to 255 else -128 to 127
        return (Math.round(value / model.inputScale) + model.inputZeroPoint).coerceIn(low, high).toByte()
    }

    private fun quantize16(value: Float): Short =
        (Math.round(value / model.inputScale) + model.inputZeroPoint).coerceIn(-32768, 32767).toShort()

    override fun close() = interpreter.close()
}

/** ExecuTorch (`org.pytorch:executorch-android`, XNNPACK inside): Module.load wants a file path, so the
 * .pte is copied out of the assets once. */
class ExecuTorchClassifier(context: Context, model: BundledModel) : Classifier {
    private val module: Module = Module.load(copyAsset(context, model.asset).absolutePath)

    override fun run(input: FloatArray): FloatArray {
        val tensor = Tensor.fromBlob(input, ModelInfo.INPUT_SHAPE)
        return module.forward(EValue.from(tensor))[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

private fun copyAsset(context: Context, asset: String): File {
    val file = File(context.filesDir, asset)
    if (!file.exists()) {
        file.parentFile?.mkdirs()
        context.assets.open(asset).use { input -> file.outputStream().use { input.copyTo(it) } }
    }
    return file
}
