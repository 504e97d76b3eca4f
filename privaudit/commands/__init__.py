"""CLI commands of the analysis stages; each module has ``register(app)``."""
