// The phone runs the ExecuTorch version that validated the models at build time (see gradle.properties).
val executorchVersion: String = providers.gradleProperty("edgepipe.executorchVersion").get()

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.edgepipe.chat"
    compileSdk = 35
    defaultConfig {
        applicationId = "dev.edgepipe.chat"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }
    androidResources {
        noCompress += listOf("pte")   // copied to files/ once, then memory-mapped by the runtime
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("org.pytorch:executorch-android:$executorchVersion")   // LlmModule: ExecuTorch's LLM runner
    implementation("com.facebook.soloader:soloader:0.10.5")   // ExecuTorch's JNI loader
    implementation("com.facebook.fbjni:fbjni:0.5.1")
}
