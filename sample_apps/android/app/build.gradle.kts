// The phone runs the same runtime versions that validated the models at build time (see gradle.properties).
val litertVersion: String = providers.gradleProperty("edgepipe.litertVersion").get()
val executorchVersion: String = providers.gradleProperty("edgepipe.executorchVersion").get()

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.edgepipe.demo"
    compileSdk = 35
    defaultConfig {
        applicationId = "dev.edgepipe.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }
    androidResources {
        noCompress += listOf("tflite", "pte")   // memory-mapped by the runtimes, must stay uncompressed
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("com.google.ai.edge.litert:litert:$litertVersion")
    implementation("org.pytorch:executorch-android:$executorchVersion")
    implementation("com.facebook.soloader:soloader:0.10.5")   // ExecuTorch's JNI loader
    implementation("com.facebook.fbjni:fbjni:0.5.1")
}
