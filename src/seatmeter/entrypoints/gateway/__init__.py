"""An Anthropic-compatible Messages endpoint that meters and caps the calls passing through it."""
