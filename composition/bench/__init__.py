"""Benchmarks behind ``sealscope bench``: each measures sealscope beside the ceilings of
the services underneath it (broker, store, CoAP), in the same run."""
