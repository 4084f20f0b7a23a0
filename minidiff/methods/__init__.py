"""Methods: one module per paper, each a small function or ``on_step`` hook on top of ``minidiff.core``.

Methods take tensors and denoisers; they never import the world (data, judges)
or the course (training, plotting).
"""
