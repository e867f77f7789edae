"""pytest fixtures for testing software against an ektp-card virtual card (filled in below)."""
