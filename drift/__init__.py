"""Noticing change and acting on it: signals, detectors, pseudo-labels, guardrails, adaptation.

`drift` may import `models`, never `service`.
"""
