"""Monitors: pure, I/O-free online statistics that turn event batches into signals."""
