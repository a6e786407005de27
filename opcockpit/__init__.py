"""opcockpit: a terminal cockpit for LEON-family sandbox fleets."""

from opcockpit import compile_cache

compile_cache.install()  # before any dataclass or annotation is compiled: see compile_cache.py

__version__ = "0.1.0"
