"""What a Workshop may ask of other systems, decided before anything is written.

A Workshop's `ingress.annotations` are copied onto its Ingress, where the ingress controller reads
them: whoever may create a Workshop would otherwise configure a controller that serves every host
in the cluster. The snippet annotations (CVE-2021-25742) are refused by the CRD itself; the
operator's settings refuse or allow more, by glob pattern, since which annotations are safe depends
on the controller a cluster runs. Pure functions, so the rule is tested without a cluster and the
reconcile only has to turn a refusal into `Failed`.
"""

from __future__ import annotations

import fnmatch

from roadie import settings as settings_mod
from roadie.workshop import models

#: The Ready/Provisioned condition reason of a Workshop refused here.
REASON = "Refused"


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    # annotation keys are case-sensitive, but a pattern should not be dodged by a capital letter
    return any(fnmatch.fnmatchcase(key.lower(), pattern.lower()) for pattern in patterns)


def refused_annotations(annotations: dict[str, str], cfg: settings_mod.WorkshopSettings) -> list[str]:
    """The keys that may not reach the Ingress: outside the allowlist, or on the refused list."""
    return sorted(
        key
        for key in annotations
        if key in models.SNIPPET_ANNOTATIONS
        or not _matches(key, cfg.ingress_annotations_allowed)
        or _matches(key, cfg.ingress_annotations_refused)
    )


def refused(spec: models.WorkshopSpec, cfg: settings_mod.WorkshopSettings) -> str | None:
    """Why this spec may not be provisioned, in words the user can act on; None if it may."""
    keys = refused_annotations(spec.ingress.annotations, cfg)
    if not keys:
        return None
    return (
        f"ingress.annotations {', '.join(keys)} not allowed by this operator "
        f"(allowed: {', '.join(cfg.ingress_annotations_allowed) or 'none'}; "
        f"refused: {', '.join(cfg.ingress_annotations_refused) or 'none'}): remove them, "
        "or ask the cluster's administrators to allow them"
    )
