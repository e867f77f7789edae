"""Audit tests: authenticity."""

from __future__ import annotations
