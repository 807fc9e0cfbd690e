import ExecuTorch
import Foundation

/// One bundled model (written into ModelInfo.swift by edgepipe).
struct BundledModel {
    let name: String
    let asset: String     // path inside the app's Resources folder
    let format: String
}

/// Runs a bundled .pte with ExecuTorch (XNNPACK linked in): float input in the source layout, float scores out.
final class ExecuTorchClassifier {
    private let module: Module

    init(model: BundledModel) throws {
        guard model.format == "pte" else {
            throw NSError(domain: "edgepipe", code: 1, userInfo: [NSLocalizedDescriptionKey: "this app has no runtime for \(model.format)"])
        }
        module = Module(filePath: resourcePath(model.asset))
        try module.load("forward")
    }

    func run(_ input: [Float]) throws -> [Float] {
        let tensor = Tensor<Float>(input, shape: ModelInfo.inputShape)
        let output: Tensor<Float> = try module.forward(tensor)
        return output.scalars()
    }
}

func resourcePath(_ relative: String) -> String {
    Bundle.main.bundleURL.appendingPathComponent("Resources").appendingPathComponent(relative).path
}
