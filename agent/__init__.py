"""The wpfleet daemon and command line: config, policy, scheduling, state, audit, tickets, fleet."""

__version__ = "0.1.0"
