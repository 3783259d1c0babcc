"""What runs an attempt: channels and input gates, the subtask loop, checkpointing, deploy."""
