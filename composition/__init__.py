"""The composition root: where sealscope's core and components are wired into programs.

Everything that needs more than one component lives here: the command line (``cli``),
the process runtime behind ``sealscope up``/``ingest``/``api``/``gateway``/``sim``
(``runtime``), the embedded broker (``embedded``, ``servers``), the HTTP API's assembly
(``api``), the benchmarks (``bench``) and the evaluation against the simulator's ground
truth (``evaluation``). It may import everything; nothing imports it.
"""
