"""aidc: the operations platform for an AI datacenter."""

__version__ = "0.1.0"
