"""The logical graph, the execution plan (parallelism, chaining) and partitioners."""
