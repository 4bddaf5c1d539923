"""The execution layer: decides what runs compiled on the current backend."""
