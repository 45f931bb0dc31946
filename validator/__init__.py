"""The validator: takes jobs from the facilitator and drives each through a miner (DESIGN.md §8)."""
