import SwiftUI

/// Classifies the bundled samples with every bundled model; shows predictions, agreement with the outputs
/// recorded when edgepipe validated the model, and the latency measured on this iPhone.
struct ContentView: View {
    @State private var report = "Running \(ModelInfo.models.count) models on \(ModelInfo.sampleCount) samples..."

    var body: some View {
        ScrollView { Text(report).font(.system(.footnote, design: .monospaced)).padding() }
            .task { report = await Task.detached { runAll() }.value }
    }
}

private struct Samples: Decodable {
    let inputs: [[Float]]
    let expected: [String: [[Float]]]
}

private func runAll() -> String {
    do {
        let data = try Data(contentsOf: URL(fileURLWithPath: resourcePath("samples.json")))
        let samples = try JSONDecoder().decode(Samples.self, from: data)
        var lines = ["edgepipe demo: \(ModelInfo.target) target, input \(ModelInfo.inputShape) (\(ModelInfo.layout))"]
        for model in ModelInfo.models {
            let classifier = try ExecuTorchClassifier(model: model)
            let outputs = try samples.inputs.map { try classifier.run($0) }
            let reference = samples.expected[model.name] ?? []
            let agree = zip(outputs, reference).filter { argmax($0) == argmax($1) }.count
            let maxDiff = zip(outputs, reference).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? .nan
            for _ in 0..<ModelInfo.warmup { _ = try classifier.run(samples.inputs[0]) }
            var times: [Double] = []
            for _ in 0..<ModelInfo.runs {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try classifier.run(samples.inputs[0])
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            times.sort()
            let predictions = outputs.map { ModelInfo.labels.indices.contains(argmax($0)) ? ModelInfo.labels[argmax($0)] : "?" }
            lines.append("\n\(model.name) (\(model.asset))\n  predictions \(predictions)\n"
                + "  top-1 agrees with build: \(agree)/\(outputs.count), max |diff| \(String(format: "%.2e", maxDiff))\n"
                + "  p50 \(String(format: "%.3f", times[times.count / 2])) ms, p90 \(String(format: "%.3f", times[times.count * 9 / 10])) ms (measured on this iPhone)")
        }
        return lines.joined(separator: "\n")
    } catch {
        return "Failed: \(error)"
    }
}

private func argmax(_ values: [Float]) -> Int {
    values.indices.max { values[$0] < values[$1] } ?? -1
}
