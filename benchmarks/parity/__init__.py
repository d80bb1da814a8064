"""Parity fixtures: videodd against the official code, on the same weights and tensors."""
