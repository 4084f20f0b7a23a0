"""minidiff: diffusion models and their applications, from scratch, in small readable pieces.

The layers, from the bottom: ``minidiff.core`` (schedules, UNet, samplers,
denoiser wrappers, attention seam, checkpoints), ``minidiff.methods`` (one
module per paper), ``minidiff.world`` (data with exact answers, judges,
metrics), ``minidiff.course`` (the shipped models, probes, recipes, sweeps,
plotting). Imports only go down. The names most chapters need are re-exported here.
"""

from .core.attention import (AttentionSite, AttentionStore, at_step, attach_controller, attention_modules, chain_controllers,
                             current_step, current_timestep, uniform_attention)
from .core.checkpoint import CheckpointError, available_checkpoints, load_checkpoint, load_text_unet, load_unet, save_checkpoint
from .core.denoisers import with_cfg, with_inputs, with_noise_level, with_prediction, with_text_cfg, with_x0_clipping
from .core.sampling import Recorder, StepState, chain, ddim_step, ddpm_step, invert_ddim, sample_ddim, sample_ddpm
from .core.schedule import Schedule, cosine_schedule, linear_schedule, scaled_linear_schedule
from .core.unet import UNet, UNetConfig

__version__ = "0.1.0"

__all__ = [
    "AttentionSite", "AttentionStore", "at_step", "attach_controller", "attention_modules", "chain_controllers", "current_step",
    "current_timestep", "uniform_attention",
    "CheckpointError", "available_checkpoints", "load_checkpoint", "load_text_unet", "load_unet", "save_checkpoint",
    "with_cfg", "with_inputs", "with_noise_level", "with_prediction", "with_text_cfg", "with_x0_clipping",
    "Recorder", "StepState", "chain", "ddim_step", "ddpm_step", "invert_ddim", "sample_ddim", "sample_ddpm",
    "Schedule", "cosine_schedule", "linear_schedule", "scaled_linear_schedule",
    "UNet", "UNetConfig",
]
