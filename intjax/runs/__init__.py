"""What the `patch` and `theorems` commands compute, as library calls."""
