"""Persistence: atomic file writes now; tables and blob storage come with the service."""
