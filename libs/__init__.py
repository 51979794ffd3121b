"""Shared libraries."""
