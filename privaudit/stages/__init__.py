"""The stages of an audit, each a function ``stage(run, cfg, console)`` of a
:class:`~privaudit.runtime.run.Run` that reads the artifacts of earlier stages through it and
skips work already done. Stages never import each other; :func:`run_all` only sequences them.

prepare -> target (queried before training) -> train -> query -> curvature -> evaluate
-> target (attacked) -> report
"""
