"""Hostile inputs to every entry point, in tables by area (``context.py`` has what they share)."""
