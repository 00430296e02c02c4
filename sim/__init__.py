"""The simulator: seeded scenarios with ground truth, and their producer to Kafka."""
