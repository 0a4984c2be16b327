"""What is on a site: SSH transport, WP-CLI and REST clients, models and version rules."""
