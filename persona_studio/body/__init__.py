"""body stage."""
