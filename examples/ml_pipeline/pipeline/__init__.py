"""Helpers shared by the example's environments."""
