"""PERSONA Studio: one photo of a person -> an animatable whole-body 3D Gaussian avatar."""

__version__ = "0.1.0"
