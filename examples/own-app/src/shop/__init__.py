"""The shop team's Serve apps."""
