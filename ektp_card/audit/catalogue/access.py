"""Audit tests: access."""

from __future__ import annotations
