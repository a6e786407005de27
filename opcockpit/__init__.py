"""opcockpit: a terminal cockpit for LEON-family sandbox fleets."""

__version__ = "0.1.0"
