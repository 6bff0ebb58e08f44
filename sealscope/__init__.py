"""sealscope: telemetry and seal health for NB-IoT smart pumps and valves (the shared core)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
