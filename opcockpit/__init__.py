"""opcockpit: a terminal cockpit for LEON-family sandbox fleets."""

from opcockpit import dataclass_code

dataclass_code.install()  # before any dataclass is made: see dataclass_code.py

__version__ = "0.1.0"
