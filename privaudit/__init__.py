"""privaudit: measure how much a trained neural network leaks about its training data."""

__version__ = "0.1.0"
