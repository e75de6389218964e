"""Service control plane (SCP): login, dashboard, management API."""
