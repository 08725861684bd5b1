"""The `roadie` command line: the operator, its CRDs, and the local cluster."""
