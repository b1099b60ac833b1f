"""MIE-Net reproduction toolkit: data preparation, models, training and the workflow around them."""

__version__ = "0.1.0"
