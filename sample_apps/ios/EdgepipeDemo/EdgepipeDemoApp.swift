import SwiftUI

@main
struct EdgepipeDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
