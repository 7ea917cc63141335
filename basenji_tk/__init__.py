"""basenji_tk: sequence-to-function genomics with Keras, in the style of Basenji."""

__version__ = "0.1.0"
