"""The core: schedules, the UNet and its attention seam, samplers, denoiser wrappers, checkpoints.

It knows nothing of any method, data set or notebook; everything else builds on it.
"""
