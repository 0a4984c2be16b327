"""What wpfleet does to a site: backup, update, health check, rollback, check-up."""
