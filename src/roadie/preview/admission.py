"""What a PreviewEnvironment may ask of other systems, decided before anything is written.

Its per-object `cluster_issuer` and `base_domain` reach cert-manager and DNS: an issuer is a
cluster-wide signing identity (a private CA's, or an ACME account with its rate limits), and a
base domain decides which names the cluster asks certificates for and the ingress controller
answers. Whoever may create a PreviewEnvironment may use only those the operator's settings list:
by default just the operator's own `cluster_issuer` and `base_domain`. Pure functions, so the rule
is tested without a cluster and the reconcile only has to turn a refusal into `Failed`.
"""

from __future__ import annotations

import fnmatch

from roadie import settings as settings_mod
from roadie.preview import models

#: The Ready condition reason of a PreviewEnvironment refused here.
REASON = "Refused"


def issuer_allowed(issuer: str, cfg: settings_mod.PreviewSettings) -> bool:
    return issuer == cfg.cluster_issuer or issuer in cfg.allowed_cluster_issuers


def domain_allowed(domain: str, cfg: settings_mod.PreviewSettings) -> bool:
    """The operator's base domain, or one matching an allowed glob (`*.preview.example.com`)."""
    domain = domain.lower().rstrip(".")
    patterns = (cfg.base_domain, *cfg.allowed_base_domains)
    return any(fnmatch.fnmatchcase(domain, pattern.lower().rstrip(".")) for pattern in patterns)


def refused(spec: models.PreviewEnvironmentSpec, cfg: settings_mod.PreviewSettings) -> str | None:
    """Why this spec may not be provisioned, in words the user can act on; None if it may."""
    problems = []
    if spec.cluster_issuer is not None and not issuer_allowed(spec.cluster_issuer, cfg):
        allowed = ", ".join((cfg.cluster_issuer, *cfg.allowed_cluster_issuers))
        problems.append(f"cluster_issuer {spec.cluster_issuer!r} is not one this operator allows ({allowed})")
    if spec.base_domain is not None and not domain_allowed(spec.base_domain, cfg):
        allowed = ", ".join((cfg.base_domain, *cfg.allowed_base_domains))
        problems.append(f"base_domain {spec.base_domain!r} is not one this operator allows ({allowed})")
    if not problems:
        return None
    return "; ".join(problems) + ": leave the field out to use the operator's, or ask its administrators to allow it"
