"""API plumbing shared by every app: views, errors, JSON input, keys and their checks."""
