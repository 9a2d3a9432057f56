"""twin_bridge package."""
