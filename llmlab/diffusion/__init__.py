"""Bonus track: diffusion models, one concept per file.

- ``llmlab.diffusion.ddpm`` -- bonus notebook 4: noise schedules (linear, cosine), the forward process in closed form,
  DDPM ancestral steps and DDIM steps for an ε-prediction model (equal to ``diffusers``' schedulers), timestep features.
"""
