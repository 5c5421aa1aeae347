"""Templates and static files; data only, no logic."""
