"""The world the chapters measure on: toy distributions with exact answers, and metrics.

Methods never import this layer: they take tensors and callables.
"""
