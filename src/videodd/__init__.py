"""videodd: video dataset distillation with an honest evaluation protocol.

Float video tensors are ``(N, C, T, H, W)`` everywhere in the library (what ``Conv3d``
takes); clips on disk are uint8 ``(N, T, H, W, C)``.
"""

__version__ = "0.1.0"
