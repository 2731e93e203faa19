"""emotion-tf: train, export and serve AlexNet happy/sad facial-expression classifiers."""

__version__ = "0.1.0"
