"""The stack around the zone: settings, rendered configs, child processes and the run."""
