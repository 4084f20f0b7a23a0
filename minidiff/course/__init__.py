"""The course layer: what the chapters use on top of core, methods and world.

``zoo`` (the shipped models, loaded and run), ``probes`` (prompt-following, word distances, attention lift),
``gates`` (what the base model must reach), ``cards`` (the model-card template), ``results`` (result files and
resumable parts), ``benchmark`` and ``detail_edits`` (the edit benchmarks), ``recipes`` (how each shipped model
is trained), ``sweeps`` (the measured sweeps behind the chapters), ``train``, ``plotting``, ``widgets``.
"""
