"""Candidate generation for generate-then-select methods (docs/ARCHITECTURE.md).

- :mod:`videodd.generate.unet`: the network, a small class-conditional spatio-temporal U-Net;
- :mod:`videodd.generate.diffusion`: the algorithm (DDPM training through the one training loop,
  classifier-free guidance, sampling with diffusers' schedulers), generator files;
- :mod:`videodd.generate.candidates`: resumable candidate pools written as ClipStores.

diffusers is imported only when a scheduler is built (the ``diffusion`` extra).
"""
