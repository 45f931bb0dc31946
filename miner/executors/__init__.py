"""The executor pool and how executors are started."""
