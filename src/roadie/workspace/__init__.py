"""Workspace and Snapshot (jvs.io/v1alpha1): versioned workspaces and the snapshot engine behind them."""
