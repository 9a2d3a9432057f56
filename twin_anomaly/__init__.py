"""twin_anomaly package."""
