"""The built-in transports (`edgepipe.transports` plugins), chosen by the `--device` URL's scheme: local (this
host, no device), ssh (Linux boards) and adb (Android phones), plus the runner script the ssh one pushes."""
