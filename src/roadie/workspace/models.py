"""The Workspace and Snapshot APIs (`jvs.io/v1alpha1`), exactly as JVS's operator defined them, plus
Roadie's optional additions (each one says so in its description).

Field names, defaults, phases, short names and printer columns are the original's; `deploy/crds/`
is generated from these classes, so whatever a schema or CEL rule can refuse (a tag outside
`[a-zA-Z0-9._-]+`, a compression level above 9, an unknown engine, a malformed schedule or
duration) the API server refuses before any controller sees it.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import pydantic

from roadie.core import api, cron, durations, models

GROUP, VERSION = "jvs.io", "v1alpha1"
TAG_PATTERN = r"^[a-zA-Z0-9._-]+$"
#: A worktree is a folder name under `worktrees/`: no slash, no dot-only names.
WORKTREE_PATTERN = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]*$"
#: A path inside main/: relative, no `..` component.
PARTIAL_PATH_PATTERN = r"^[^/].*$"
#: A snapshot ID, tag, unique ID prefix, or the name of a Snapshot object of the same workspace.
SOURCE_PATTERN = r"^[a-zA-Z0-9._-]+$"

Tag = Annotated[str, pydantic.Field(pattern=TAG_PATTERN, max_length=128)]
PartialPath = Annotated[
    str,
    pydantic.Field(
        pattern=PARTIAL_PATH_PATTERN,
        max_length=256,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!self.matches('(^|/)[.][.](/|$)')", "message": "a partial path may not contain '..'"}
            ]
        },
    ),
]
Engine = Literal["copy", "reflink-copy", "juicefs-clone"]
WorkspacePhase = Literal["Pending", "Creating", "Ready", "Updating", "Failed", "Terminating"]
SnapshotPhase = Literal["Pending", "InProgress", "Ready", "Failed", "Expiring"]


class SecretsRef(models.ApiModel):
    name: str = pydantic.Field(min_length=1, description="Secret in the workspace's namespace.")
    keys: list[str] = pydantic.Field(
        default_factory=list, description="The keys of the Secret the JuiceFS mount reads (empty: all of them)."
    )


class JuiceFsConfig(models.ApiModel):
    source: str = pydantic.Field(
        min_length=1, description="JuiceFS metadata engine URL (e.g. redis://host:6379/0): the CSI driver's metaurl."
    )
    metaDir: str | None = pydantic.Field(
        default=None, description="Sub-directory of the JuiceFS file system that holds this workspace (subdir=)."
    )
    cacheDir: str | None = pydantic.Field(default=None, description="Local cache directory on the node (cache-dir=).")
    secretsRef: SecretsRef | None = pydantic.Field(
        default=None,
        description="Secret with the file system's credentials (name, storage, bucket, access-key, secret-key).",
    )


class RetentionPolicy(models.ApiModel):
    keepMinSnapshots: int = pydantic.Field(
        default=10, ge=0, description="A snapshot is removed only while more than this many Ready ones remain."
    )
    keepMinAge: models.Duration = pydantic.Field(
        default="24h", description="A snapshot younger than this is never removed (e.g. 24h, 2d)."
    )
    keepTags: list[Tag] = pydantic.Field(
        default_factory=list, description="A snapshot carrying any of these tags is never removed."
    )
    keepHourly: int = pydantic.Field(
        default=0, ge=0, description="Roadie addition: keep the newest snapshot of each of the last N hours."
    )
    keepDaily: int = pydantic.Field(
        default=0, ge=0, description="Roadie addition: keep the newest snapshot of each of the last N days."
    )
    keepWeekly: int = pydantic.Field(
        default=0, ge=0, description="Roadie addition: keep the newest snapshot of each of the last N ISO weeks."
    )


class AutoSnapshot(models.ApiModel):
    enabled: bool = pydantic.Field(default=False, description="Take snapshots on `schedule`.")
    schedule: str | None = pydantic.Field(
        default=None,
        pattern=cron.PATTERN,
        max_length=cron.MAX_LENGTH,
        description="Cron schedule (five fields or @hourly/@daily/...), in UTC.",
    )
    template: str | None = pydantic.Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=40,
        description="Name prefix of automatic Snapshots (<template>-<yyyymmdd-hhmm>); default: the workspace name.",
    )
    maxSnapshots: int = pydantic.Field(
        default=30,
        ge=1,
        description="At most this many automatic snapshots are kept: the oldest one is removed to make room.",
    )


class WorkspaceSpec(models.ApiModel):
    replicas: int = pydantic.Field(default=1, ge=0, le=100, description="Workspace pods mounting the volume.")
    storage: models.Quantity = pydantic.Field(default="10Gi", description="Size of the workspace's claim.")
    storageClassName: str | None = pydantic.Field(
        default=None, description="StorageClass of the claim; unset: the cluster's default."
    )
    defaultEngine: Engine = pydantic.Field(default="copy", description="Engine of Snapshots that name none.")
    juiceFsConfig: JuiceFsConfig | None = pydantic.Field(
        default=None, description="Mount a JuiceFS file system through the JuiceFS CSI driver (csi.juicefs.com)."
    )
    retentionPolicy: RetentionPolicy | None = pydantic.Field(
        default=None, description="Which Ready snapshots are removed; unset: none ever are."
    )
    autoSnapshot: AutoSnapshot | None = pydantic.Field(default=None, description="Snapshots taken on a schedule.")
    mountOptions: list[str] = pydantic.Field(
        default_factory=list, description="Mount options of the volume (JuiceFS: e.g. cache-size=2048)."
    )
    initialSnapshot: str | None = pydantic.Field(
        default=None,
        pattern=SOURCE_PATTERN,
        description="A snapshot ID, tag or prefix already on the volume to restore into main/ when the layout is made.",
    )
    image: str | None = pydantic.Field(
        default=None,
        min_length=1,
        description="Roadie addition: the workspace pods' image (default: the operator's workspace image setting).",
    )
    retainClaim: bool = pydantic.Field(
        default=False, description="Roadie addition: keep the claim (and its data) when the Workspace is deleted."
    )


class WorkspaceStatus(models.ApiModel):
    phase: WorkspacePhase | None = None
    message: str | None = None
    currentSnapshot: str | None = pydantic.Field(
        default=None, description="The snapshot main/ was last taken as or restored from."
    )
    snapshotCount: int | None = pydantic.Field(default=None, description="Ready snapshots of this workspace.")
    readyReplicas: int | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)
    lastSnapshotTime: datetime.datetime | None = None
    nextSnapshotTime: datetime.datetime | None = None
    # Roadie additions
    observedGeneration: int | None = None
    claimName: str | None = pydantic.Field(default=None, description="Roadie addition: the workspace's claim.")
    lastScheduleTime: datetime.datetime | None = pydantic.Field(
        default=None, description="Roadie addition: the last schedule tick an automatic snapshot was made for."
    )


class Compression(models.ApiModel):
    type: Literal["gzip", "zstd", "none"] = pydantic.Field(default="none", description="gzip, zstd or none.")
    level: int = pydantic.Field(default=6, ge=0, le=9, description="Compression level 0-9.")


class SnapshotSpec(models.ApiModel):
    workspace: str = pydantic.Field(min_length=1, description="The Workspace (same namespace) to snapshot.")
    sourceSnapshot: str | None = pydantic.Field(
        default=None,
        pattern=SOURCE_PATTERN,
        description=(
            "Refer to an existing snapshot instead of taking one: an ID, a tag, a unique ID prefix or the name of "
            "a Snapshot object of the same workspace. With restoreOnCreate it is restored (into main/ unless "
            "restoreWorktree is set); such a Snapshot owns no data."
        ),
    )
    note: str = pydantic.Field(default="", max_length=1024, description="Free text kept with the snapshot.")
    tags: list[Tag] = pydantic.Field(
        default_factory=list, max_length=64, description="Tags ([a-zA-Z0-9._-]+) of the snapshot."
    )
    partialPaths: list[PartialPath] = pydantic.Field(
        default_factory=list, max_length=64, description="Snapshot only these paths of main/ (relative, no '..')."
    )
    engine: Engine = pydantic.Field(default="copy", description="copy, reflink-copy or juicefs-clone.")
    template: str | None = pydantic.Field(default=None, description="The schedule template that made this snapshot.")
    compression: Compression | None = pydantic.Field(default=None, description="Store the payload compressed.")
    restoreOnCreate: bool = pydantic.Field(default=False, description="Restore the snapshot once it exists.")
    restoreWorktree: str | None = pydantic.Field(
        default=None,
        pattern=WORKTREE_PATTERN,
        max_length=128,
        description="Restore into worktrees/<name>/ instead of main/.",
    )


class RestoreStatus(models.ApiModel):
    worktreeName: str | None = None
    phase: Literal["Pending", "InProgress", "Completed", "Failed"] | None = None
    startedAt: datetime.datetime | None = None
    completedAt: datetime.datetime | None = None


class SnapshotStatus(models.ApiModel):
    phase: SnapshotPhase | None = None
    message: str | None = None
    snapshotID: str | None = None
    createdAt: datetime.datetime | None = None
    completedAt: datetime.datetime | None = None
    size: int | None = pydantic.Field(default=None, description="Bytes of payload the snapshot holds.")
    integrityState: str | None = None
    descriptorChecksum: str | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)
    restoreStatus: RestoreStatus | None = None
    # Roadie additions
    observedGeneration: int | None = None
    fileCount: int | None = None
    jobName: str | None = pydantic.Field(default=None, description="Roadie addition: the engine Job last run.")


SCHEDULE_NEEDED = api.CelRule(
    rule="!has(self.autoSnapshot) || !self.autoSnapshot.enabled || has(self.autoSnapshot.schedule)",
    message="autoSnapshot.enabled needs autoSnapshot.schedule (e.g. '0 */4 * * *')",
)
WORKTREE_NEEDS_RESTORE = api.CelRule(
    rule="!has(self.restoreWorktree) || self.restoreOnCreate",
    message="restoreWorktree is only used with restoreOnCreate: true",
)
SPEC_IMMUTABLE = api.CelRule(rule="self == oldSelf", message="a Snapshot's spec cannot change; create another Snapshot")

WORKSPACE_API = api.Api(
    group=GROUP,
    version=VERSION,
    kind="Workspace",
    plural="workspaces",
    spec=WorkspaceSpec,
    status=WorkspaceStatus,
    short_names=("jvs",),
    printer_columns=(
        api.PrinterColumn("Status", ".status.phase"),
        api.PrinterColumn("Snapshots", ".status.snapshotCount", "integer"),
        api.AGE,
    ),
    spec_rules=(SCHEDULE_NEEDED,),
)

SNAPSHOT_API = api.Api(
    group=GROUP,
    version=VERSION,
    kind="Snapshot",
    plural="snapshots",
    spec=SnapshotSpec,
    status=SnapshotStatus,
    short_names=("jvssnap",),
    printer_columns=(
        api.PrinterColumn("Workspace", ".spec.workspace"),
        api.PrinterColumn("Status", ".status.phase"),
        api.PrinterColumn("SnapshotID", ".status.snapshotID"),
        api.AGE,
    ),
    spec_rules=(WORKTREE_NEEDS_RESTORE, SPEC_IMMUTABLE),
)

APIS = [WORKSPACE_API, SNAPSHOT_API]


def keep_min_age(policy: RetentionPolicy) -> datetime.timedelta:
    return durations.parse(policy.keepMinAge)
