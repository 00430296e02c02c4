"""The Kafka worker: the per-partition processor and the engines that feed it."""
