"""Built-in apps; each registers itself through the `citybrain.apps` entry-point group."""
