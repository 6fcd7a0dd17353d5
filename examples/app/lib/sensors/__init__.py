# A tiny sensor package.
from .thermometer import Thermometer

__all__ = ["Thermometer"]
