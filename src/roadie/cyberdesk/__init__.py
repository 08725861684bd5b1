"""Cyberdesk (cyberdesk.io/v1alpha1): KubeVirt desktops with exact timeouts and a status sink."""
