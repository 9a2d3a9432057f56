"""The twin outside ROS: REST API, dashboard, OPC UA, Foxglove and AAS, fed from one store."""
