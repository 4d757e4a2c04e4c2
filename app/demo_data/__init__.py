"""The demo-data engine: sources of characters with exact masks, composed into training data."""
