"""The JVS snapshot engine: versions a volume's `main/` by whole snapshots that cost what changed.

It runs inside a Job that mounts the workspace's volume (`roadie jvs ...`), so it imports neither
Kubernetes nor the operator's core: only the standard library and `zstandard`. One module per
concern: `layout` (the on-volume layout, IDs, locking), `tree` (walking, hashing, the manifest),
`copying` (engines, one file at a time), `payload` (a whole tree into a snapshot), `compression`,
`store` (finding published snapshots), `publish`, `restore`, `verify`, `delete`, `retention`, and
`volume` (lock and crash recovery around every command).
"""
