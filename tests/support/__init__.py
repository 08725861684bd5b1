"""Helpers that several test trees share: real servers started from the machine's binaries."""
