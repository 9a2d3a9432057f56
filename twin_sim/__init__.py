"""twin_sim package."""
