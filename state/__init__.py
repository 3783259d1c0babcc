"""streamlet package."""
