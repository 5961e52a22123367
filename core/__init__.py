"""Infrastructure every app builds on; it imports no app."""
