"""The miner: serves validators and executors, keeps the executor pool (DESIGN.md §1)."""
