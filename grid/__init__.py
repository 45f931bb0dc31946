"""The Django project that wires the parties together, the `grid` CLI and the local grid."""
