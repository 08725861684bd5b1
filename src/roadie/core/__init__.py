"""Mechanisms written once and used by every kind: client, models, CRD generation, conditions,
status, children, expiry, durations, events, metrics and naming. Nothing here imports a kind."""
