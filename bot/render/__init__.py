"""Turning the core's plain results (reports, problems, message keys) into text for people."""
