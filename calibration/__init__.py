"""From characterisation data to fitted device models and programming tables."""
