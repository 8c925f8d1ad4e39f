"""Realistic simulated lead traffic (pure), where it is sent, and how well models rank it."""
