"""Ray Serve applications bundled into the runtime image (see serve_config.yaml)."""
