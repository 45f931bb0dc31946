"""The executor: one plain asyncio process per job, started by the miner (DESIGN.md §5). No Django."""
