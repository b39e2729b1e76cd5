"""dpcourse: the helper package behind the differentially private machine learning course."""

__version__ = "0.1.0"
