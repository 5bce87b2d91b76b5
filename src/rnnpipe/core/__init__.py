"""Machinery both projects share; it imports neither project."""
