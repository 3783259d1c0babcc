"""A job from start to end: runner (failover, restore), restart strategies, recovery, client."""
